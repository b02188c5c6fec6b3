// FuseNN owns the forward side of FuseKit's neural-network ops and layers: Linear over any stored
// weight dtype (f32, f16, bf16 and the GGUF block formats, read in place), RMSNorm and LayerNorm,
// rotary embeddings with their scaling rules, attention over a KV cache (GQA, sliding windows,
// padding), embeddings and activations. It must not know about files or architectures.
//
// Shape legend (used in every comment of this module and of FuseModels):
//   B  sequences in a batch        T  new tokens per sequence in this call     S  cached slots
//   C  hidden size                 H  query heads    KVH  key/value heads      D  head size
//   F  MLP width                   V  vocabulary
// Activations are row-major f32 `[B*T, width]` with row `b*T + t`.
//
// Each op is a free function or a small struct with `forward`; training (issue 8) adds the matching
// `...Backward` right beside each forward, with arguments in the same order and the saved activations
// named in a struct, so nothing here has to be restructured for it.
import FuseTensor

/// Every error FuseNN raises: what failed, which tensor, and what to do.
public enum NNError: Error, CustomStringConvertible, Equatable {
    case shapeMismatch(tensor: String, expected: [Int], got: [Int])
    case unsupportedDType(tensor: String, dtype: DType)
    case contextOverflow(needed: Int, capacity: Int)
    case tokenOutOfRange(token: Int, vocabulary: Int)
    case invalidArgument(String)

    public var description: String {
        switch self {
        case let .shapeMismatch(tensor, expected, got):
            return "tensor '\(tensor)': expected shape \(expected), got \(got); the weights do not match the config"
        case let .unsupportedDType(tensor, dtype):
            return "tensor '\(tensor)' is stored as \(dtype.rawValue), which the runtime cannot read (supported: f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q4_K, q5_K, q6_K)"
        case let .contextOverflow(needed, capacity):
            return "the sequence needs \(needed) positions but the context holds \(capacity); shorten the prompt or lower --max-tokens"
        case let .tokenOutOfRange(token, vocabulary):
            return "token id \(token) is outside the vocabulary of \(vocabulary) entries"
        case let .invalidArgument(what): return what
        }
    }
}

/// ggml type id of a dtype the runtime kernels read, nil otherwise.
func kernelType(_ dtype: DType) -> UInt32? {
    guard let id = dtype.traits.ggmlType, fk_type_supported(id) != 0 else { return nil }
    return id
}
import CFuseKernels
