// Q5_K: 256-weight super-blocks of eight 32-weight sub-blocks, 5-bit quants, scales and mins
// packed as Q4_K (ggml `block_q5_K`).

/// Q5_K, 176 bytes per 256 weights (5.5 bits/weight):
///
///     offset  0  d:      f16
///     offset  2  dmin:   f16
///     offset  4  scales: u8[12]   see `scaleMinK4`
///     offset 16  qh:     u8[32]   bit 4 of element i = (qh[i % 32] >> (i / 32)) & 1
///     offset 48  qs:     u8[128]  low 4 bits, packed as Q4_K
///     y[i] = (d * scale[i/32]) * q[i] - (dmin * min[i/32])
@Sendable func dequantizeQ5_K(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ count: Int) {
    for b in 0..<count / superBlockElements {
        let block = src + b * 176
        var y = dst + b * superBlockElements
        let d = halfField(block, 0)
        let dmin = halfField(block, 2)
        let qh = block + 16
        var bit0: UInt8 = 1, bit1: UInt8 = 2
        for chunk in 0..<4 {
            let qs = block + 48 + 32 * chunk
            let (sc0, m0) = scaleMinK4(block + 4, 2 * chunk)
            let (sc1, m1) = scaleMinK4(block + 4, 2 * chunk + 1)
            let d0 = d * Float(sc0), min0 = dmin * Float(m0)
            let d1 = d * Float(sc1), min1 = dmin * Float(m1)
            for l in 0..<32 {
                let q = byteField(qs, l)
                let h = byteField(qh, l)
                let lo = (q & 0x0F) | (h & bit0 != 0 ? 16 : 0)
                let hi = (q >> 4) | (h & bit1 != 0 ? 16 : 0)
                y[l] = d0 * Float(lo) - min0
                y[l + 32] = d1 * Float(hi) - min1
            }
            y += 64
            bit0 <<= 2
            bit1 <<= 2
        }
    }
}
