// Q2_K: 256-weight super-blocks of sixteen 16-weight groups, 2-bit quants (ggml `block_q2_K`).

/// Q2_K, 84 bytes per 256 weights (2.625 bits/weight):
///
///     offset  0  scales: u8[16]  group g: scale = scales[g] & 0xF, min = scales[g] >> 4
///     offset 16  qs:     u8[64]  element i = 128h + 32s + l: (qs[32h + l] >> 2s) & 3
///     offset 80  d:      f16
///     offset 82  dmin:   f16
///     y[i] = (d * scale[i/16]) * q[i] - (dmin * min[i/16])
@Sendable func dequantizeQ2_K(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ count: Int) {
    for b in 0..<count / superBlockElements {
        let block = src + b * 84
        var y = dst + b * superBlockElements
        let d = halfField(block, 80)
        let dmin = halfField(block, 82)
        var group = 0
        for half in 0..<2 {
            let qs = block + 16 + 32 * half
            for shift: UInt8 in stride(from: 0, to: 8, by: 2) {
                for part in 0..<2 {
                    let sc = byteField(block, group)
                    group += 1
                    let dl = d * Float(sc & 0x0F)
                    let ml = dmin * Float(sc >> 4)
                    for l in 0..<16 {
                        y[l] = dl * Float((byteField(qs, 16 * part + l) >> shift) & 3) - ml
                    }
                    y += 16
                }
            }
        }
    }
}
