// Q4_0 and Q4_1: 32 weights per block, 4-bit quants (ggml `block_q4_0`, `block_q4_1`).
// Element i < 16 is the low nibble of qs[i]; element i >= 16 is the high nibble of qs[i - 16].

/// Q4_0, 18 bytes per 32 weights (4.5 bits/weight):
///
///     offset 0  d:  f16
///     offset 2  qs: u8[16]
///     y[i] = d * (q[i] - 8)
@Sendable func dequantizeQ4_0(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ count: Int) {
    for b in 0..<count / 32 {
        let block = src + b * 18
        let y = dst + b * 32
        let d = halfField(block, 0)
        for j in 0..<16 {
            let q = byteField(block, 2 + j)
            y[j] = d * Float(Int32(q & 0x0F) - 8)
            y[j + 16] = d * Float(Int32(q >> 4) - 8)
        }
    }
}

/// Q4_1, 20 bytes per 32 weights (5 bits/weight):
///
///     offset 0  d:  f16
///     offset 2  m:  f16
///     offset 4  qs: u8[16]
///     y[i] = d * q[i] + m
@Sendable func dequantizeQ4_1(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ count: Int) {
    for b in 0..<count / 32 {
        let block = src + b * 20
        let y = dst + b * 32
        let d = halfField(block, 0)
        let m = halfField(block, 2)
        for j in 0..<16 {
            let q = byteField(block, 4 + j)
            y[j] = d * Float(q & 0x0F) + m
            y[j + 16] = d * Float(q >> 4) + m
        }
    }
}
