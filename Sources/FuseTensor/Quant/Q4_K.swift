// Q4_K: 256-weight super-blocks of eight 32-weight sub-blocks, 4-bit quants with a 6-bit scale and
// a 6-bit min per sub-block (ggml `block_q4_K`). Q5_K shares the scale packing.

/// Unpacks sub-block `j`'s 6-bit scale and min from the 12 packed bytes (ggml `get_scale_min_k4`):
///
///     j < 4:  scale = s[j] & 63                           min = s[j + 4] & 63
///     j >= 4: scale = (s[j + 4] & 0xF) | (s[j - 4] >> 6) << 4
///             min   = (s[j + 4] >> 4)  | (s[j] >> 6) << 4
@inline(__always)
func scaleMinK4(_ s: UnsafeRawPointer, _ j: Int) -> (scale: UInt8, min: UInt8) {
    if j < 4 {
        return (byteField(s, j) & 63, byteField(s, j + 4) & 63)
    }
    let scale = (byteField(s, j + 4) & 0x0F) | (byteField(s, j - 4) >> 6) << 4
    let min = (byteField(s, j + 4) >> 4) | (byteField(s, j) >> 6) << 4
    return (scale, min)
}

/// Q4_K, 144 bytes per 256 weights (4.5 bits/weight):
///
///     offset  0  d:      f16
///     offset  2  dmin:   f16
///     offset  4  scales: u8[12]   see `scaleMinK4`
///     offset 16  qs:     u8[128]  element i = 64c + 32h + l: (qs[32c + l] >> 4h) & 0xF
///     y[i] = (d * scale[i/32]) * q[i] - (dmin * min[i/32])
@Sendable func dequantizeQ4_K(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, _ count: Int) {
    for b in 0..<count / superBlockElements {
        let block = src + b * 144
        var y = dst + b * superBlockElements
        let d = halfField(block, 0)
        let dmin = halfField(block, 2)
        for chunk in 0..<4 {
            let qs = block + 16 + 32 * chunk
            let (sc0, m0) = scaleMinK4(block + 4, 2 * chunk)
            let (sc1, m1) = scaleMinK4(block + 4, 2 * chunk + 1)
            let d0 = d * Float(sc0), min0 = dmin * Float(m0)
            let d1 = d * Float(sc1), min1 = dmin * Float(m1)
            for l in 0..<32 {
                let q = byteField(qs, l)
                y[l] = d0 * Float(q & 0x0F) - min0
                y[l + 32] = d1 * Float(q >> 4) - min1
            }
            y += 64
        }
    }
}
