// Q5_0 and Q5_1: 32 weights per block, 5-bit quants (ggml `block_q5_0`, `block_q5_1`).
// The low four bits are packed as in Q4_0; bit 4 of element i is bit i of the little-endian u32 qh.

/// Q5_0, 22 bytes per 32 weights (5.5 bits/weight):
///
///     offset 0  d:  f16
///     offset 2  qh: u32 (bit i = bit 4 of element i)
///     offset 6  qs: u8[16]
///     y[i] = d * (q[i] - 16)
@Sendable func dequantizeQ5_0(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ count: Int) {
    for b in 0..<count / 32 {
        let block = src + b * 22
        let y = dst + b * 32
        let d = halfField(block, 0)
        let qh = UInt32(littleEndian: block.loadUnaligned(fromByteOffset: 2, as: UInt32.self))
        for j in 0..<16 {
            let q = UInt32(byteField(block, 6 + j))
            let lo = (q & 0x0F) | ((qh >> UInt32(j)) & 1) << 4
            let hi = (q >> 4) | ((qh >> UInt32(j + 16)) & 1) << 4
            y[j] = d * Float(Int32(lo) - 16)
            y[j + 16] = d * Float(Int32(hi) - 16)
        }
    }
}

/// Q5_1, 24 bytes per 32 weights (6 bits/weight):
///
///     offset 0  d:  f16
///     offset 2  m:  f16
///     offset 4  qh: u32 (bit i = bit 4 of element i)
///     offset 8  qs: u8[16]
///     y[i] = d * q[i] + m
@Sendable func dequantizeQ5_1(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ count: Int) {
    for b in 0..<count / 32 {
        let block = src + b * 24
        let y = dst + b * 32
        let d = halfField(block, 0)
        let m = halfField(block, 2)
        let qh = UInt32(littleEndian: block.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
        for j in 0..<16 {
            let q = UInt32(byteField(block, 8 + j))
            let lo = (q & 0x0F) | ((qh >> UInt32(j)) & 1) << 4
            let hi = (q >> 4) | ((qh >> UInt32(j + 16)) & 1) << 4
            y[j] = d * Float(lo) + m
            y[j + 16] = d * Float(hi) + m
        }
    }
}
