import Foundation
import FuseIO
import FuseTensor

// Test support shared by the test targets that need small real models on disk.

/// A tiny random Llama (tied embeddings) written as an HF folder: model.safetensors and config.json.
public func writeTinyLlama(_ dir: String, hidden: Int = 16, heads: Int = 2, kvHeads: Int = 1, headDim: Int = 8, ffn: Int = 24,
                           layers: Int = 2, vocab: Int, seed: UInt64) throws {
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    var tensors: [(String, Tensor)] = []
    var rng = SeededRNG(seed: seed, name: "tiny-llama", chunk: 0)
    func random(_ shape: [Int], scale: Float) throws -> Tensor {
        try Tensor(floats: (0..<shape.reduce(1, *)).map { _ in Float(rng.nextGaussian()) * scale }, shape: shape)
    }
    func ones(_ n: Int) throws -> Tensor { try Tensor(floats: [Float](repeating: 1, count: n), shape: [n]) }
    tensors.append(("model.embed_tokens.weight", try random([vocab, hidden], scale: 0.5)))
    for l in 0..<layers {
        let p = "model.layers.\(l)."
        let s = 1 / Float(hidden).squareRoot()
        tensors.append((p + "self_attn.q_proj.weight", try random([heads * headDim, hidden], scale: s)))
        tensors.append((p + "self_attn.k_proj.weight", try random([kvHeads * headDim, hidden], scale: s)))
        tensors.append((p + "self_attn.v_proj.weight", try random([kvHeads * headDim, hidden], scale: s)))
        tensors.append((p + "self_attn.o_proj.weight", try random([hidden, heads * headDim], scale: 1 / Float(heads * headDim).squareRoot())))
        tensors.append((p + "mlp.gate_proj.weight", try random([ffn, hidden], scale: s)))
        tensors.append((p + "mlp.up_proj.weight", try random([ffn, hidden], scale: s)))
        tensors.append((p + "mlp.down_proj.weight", try random([hidden, ffn], scale: 1 / Float(ffn).squareRoot())))
        tensors.append((p + "input_layernorm.weight", try ones(hidden)))
        tensors.append((p + "post_attention_layernorm.weight", try ones(hidden)))
    }
    tensors.append(("model.norm.weight", try ones(hidden)))
    try writeSafetensors(path: dir + "/model.safetensors", tensors: tensors, metadata: ["format": "pt"])
    let config = """
    {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": \(hidden), "intermediate_size": \(ffn),
     "num_hidden_layers": \(layers), "num_attention_heads": \(heads), "num_key_value_heads": \(kvHeads), "head_dim": \(headDim),
     "vocab_size": \(vocab), "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
     "tie_word_embeddings": true, "bos_token_id": 1, "eos_token_id": 2}
    """
    try config.write(toFile: dir + "/config.json", atomically: true, encoding: .utf8)
}
