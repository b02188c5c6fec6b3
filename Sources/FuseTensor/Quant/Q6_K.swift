// Q6_K: 256-weight super-blocks of sixteen 16-weight groups, 6-bit quants and signed 8-bit scales
// (ggml `block_q6_K`).

/// Q6_K, 210 bytes per 256 weights (6.5625 bits/weight):
///
///     offset   0  ql:     u8[128]  element i = 128h + r: low 4 bits (ql[64h + r % 64] >> 4(r / 64)) & 0xF
///     offset 128  qh:     u8[64]   high 2 bits (qh[32h + r % 32] >> 2(r / 32)) & 3
///     offset 192  scales: i8[16]   one per 16 elements
///     offset 208  d:      f16
///     q[i] = (low | high << 4) - 32
///     y[i] = (d * scales[i/16]) * q[i]
@Sendable func dequantizeQ6_K(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ count: Int) {
    var scales = [Float](repeating: 0, count: 16)
    for b in 0..<count / superBlockElements {
        let block = src + b * 210
        let y = dst + b * superBlockElements
        let d = halfField(block, 208)
        for j in 0..<16 {
            scales[j] = d * Float(block.load(fromByteOffset: 192 + j, as: Int8.self))
        }
        for half in 0..<2 {
            let ql = block + 64 * half
            let qh = block + 128 + 32 * half
            let out = y + 128 * half
            let sc = 8 * half
            for l in 0..<32 {
                let h = byteField(qh, l)
                let a = byteField(ql, l), c = byteField(ql, l + 32)
                let q0 = Int32((a & 0x0F) | (h & 3) << 4) - 32
                let q1 = Int32((c & 0x0F) | ((h >> 2) & 3) << 4) - 32
                let q2 = Int32((a >> 4) | ((h >> 4) & 3) << 4) - 32
                let q3 = Int32((c >> 4) | ((h >> 6) & 3) << 4) - 32
                let g = sc + l / 16
                out[l] = scales[g] * Float(q0)
                out[l + 32] = scales[g + 2] * Float(q1)
                out[l + 64] = scales[g + 4] * Float(q2)
                out[l + 96] = scales[g + 6] * Float(q3)
            }
        }
    }
}
