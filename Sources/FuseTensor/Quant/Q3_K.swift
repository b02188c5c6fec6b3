// Q3_K: 256-weight super-blocks of sixteen 16-weight groups, 3-bit quants and 6-bit signed
// scales (ggml `block_q3_K`).

/// Q3_K, 110 bytes per 256 weights (3.4375 bits/weight):
///
///     offset   0  hmask:  u8[32]  bit 2 of element i = (hmask[i % 32] >> (i / 32)) & 1
///     offset  32  qs:     u8[64]  low 2 bits, packed as Q2_K: (qs[32h + l] >> 2s) & 3
///     offset  96  scales: u8[12]  group j: low 4 bits (scales[j % 8] >> 4(j / 8)) & 0xF,
///                                 high 2 bits (scales[8 + j % 4] >> 2(j / 4)) & 3; minus 32
///     offset 108  d:      f16
///     q[i] = low - (hmask bit set ? 0 : 4)          (a set bit means no offset)
///     y[i] = (d * scale[i/16]) * q[i]
@Sendable func dequantizeQ3_K(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ count: Int) {
    var scales = [Float](repeating: 0, count: 16)
    for b in 0..<count / superBlockElements {
        let block = src + b * 110
        var y = dst + b * superBlockElements
        let d = halfField(block, 108)
        let packed = block + 96
        for j in 0..<16 {
            let low = (byteField(packed, j % 8) >> UInt8(4 * (j / 8))) & 0x0F
            let high = (byteField(packed, 8 + j % 4) >> UInt8(2 * (j / 4))) & 3
            scales[j] = d * Float(Int32(low | high << 4) - 32)
        }
        var group = 0
        var maskBit: UInt8 = 1
        for half in 0..<2 {
            let qs = block + 32 + 32 * half
            for shift: UInt8 in stride(from: 0, to: 8, by: 2) {
                for part in 0..<2 {
                    let dl = scales[group]
                    group += 1
                    for l in 0..<16 {
                        let lo = Int32((byteField(qs, 16 * part + l) >> shift) & 3)
                        let offset: Int32 = byteField(block, 16 * part + l) & maskBit != 0 ? 0 : 4
                        y[l] = dl * Float(lo - offset)
                    }
                    y += 16
                }
                maskBit <<= 1
            }
        }
    }
}
