/// Placeholder registry, filled by the GGUF quant formats in Quant/ (one file per block family).
enum Quantization {
    static var dequantizers: [DType: Dequantizers.Function] { [:] }
}
