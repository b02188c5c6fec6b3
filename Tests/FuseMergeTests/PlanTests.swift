import Foundation
import XCTest
import FuseIO
import FuseTensor
@testable import FuseMerge

/// The planner decides everything from headers: inputs, parameters at each layer position, dtypes,
/// shapes, layer counts, and refuses bad configs before any tensor is read.
final class PlanTests: XCTestCase {
    func model(layers: Int, hidden: Int = 4, vocab: Int = 8, dtype: DType = .f32, lmHead: Bool = true) throws -> InMemoryModel {
        var t: [(String, Tensor)] = []
        func add(_ n: String, _ shape: [Int]) throws {
            let f = try Tensor(floats: [Float](repeating: 1, count: shape.reduce(1, *)), shape: shape)
            t.append((n, dtype == .f32 ? f : try f.converted(to: dtype)))
        }
        try add("model.embed_tokens.weight", [vocab, hidden])
        for l in 0..<layers { for w in ArchitectureInfo.llamaLayer { try add("model.layers.\(l).\(w)", w.contains("norm") ? [hidden] : [hidden, hidden]) } }
        try add("model.norm.weight", [hidden])
        if lmHead { try add("lm_head.weight", [vocab, hidden]) }
        let config = try JSON.parse(#"{"architectures": ["LlamaForCausalLM"], "num_hidden_layers": \#(layers)}"#)
        return InMemoryModel(t, config: config)
    }

    func testGradientPositionsPerSliceAndPrePostAtZero() throws {
        let config = try MergeConfig.parse(yaml: """
        merge_method: linear
        slices:
          - sources: [{model: a, layer_range: [0, 3]}, {model: b, layer_range: [0, 3]}]
          - sources: [{model: a, layer_range: [3, 4]}, {model: b, layer_range: [3, 4]}]
        parameters:
          weight: [0, 1]
        """)
        let a = try model(layers: 4), b = try model(layers: 4)
        let plan = try MergePlanner(config: config, sources: [ModelReference(path: "a"): a, ModelReference(path: "b"): b]).plan()
        func weight(_ name: String) -> Double? { plan.entries.first { $0.name == name }?.parameters.perInput[0]["weight"]?.numericValue }
        XCTAssertEqual(weight("model.embed_tokens.weight"), 0)
        XCTAssertEqual(weight("lm_head.weight"), 0)            // post-layer tensors use t = 0 too
        XCTAssertEqual(weight("model.layers.0.mlp.up_proj.weight"), 0)
        XCTAssertEqual(weight("model.layers.1.mlp.up_proj.weight"), 0.5)
        XCTAssertEqual(weight("model.layers.2.mlp.up_proj.weight"), 1)
        XCTAssertEqual(weight("model.layers.3.mlp.up_proj.weight"), 1) // one-layer slice: t = 1
        XCTAssertEqual(plan.layerCount, 4)
        XCTAssertEqual(plan.entries.count, 3 + 4 * 9)
    }

    func testFrankenmergeRenumbersLayersAndTiedLmHeadIsSkipped() throws {
        let config = try MergeConfig.parse(yaml: """
        merge_method: passthrough
        slices:
          - sources: [{model: a, layer_range: [0, 2]}]
          - sources: [{model: a, layer_range: [1, 2]}]
        """)
        let a = try model(layers: 2, lmHead: false)
        let plan = try MergePlanner(config: config, sources: [ModelReference(path: "a"): a]).plan()
        XCTAssertEqual(plan.layerCount, 3)
        let l2 = try XCTUnwrap(plan.entries.first { $0.name == "model.layers.2.self_attn.q_proj.weight" })
        XCTAssertEqual(l2.inputs, [PlannedInput(model: 0, tensor: "model.layers.1.self_attn.q_proj.weight")])
        XCTAssertNil(plan.entries.first { $0.name == "lm_head.weight" })
    }

    func testGlobalMethodParametersIgnoreModelLevelAndRequiredOnesFail() throws {
        let a = try model(layers: 1), b = try model(layers: 1)
        let sources: [ModelReference: ModelSource] = [ModelReference(path: "a"): a, ModelReference(path: "b"): b]
        // `t` under a model is ignored (mergekit searches only slice/module/global levels for it).
        let c = try MergeConfig.parse(yaml: "merge_method: slerp\nbase_model: a\nmodels: [{model: a}, {model: b, parameters: {t: 0.3}}]\n")
        XCTAssertThrowsError(try MergePlanner(config: c, sources: sources).plan()) { e in
            XCTAssertTrue("\(e)".contains("needs 't'"), "\(e)")
        }
        let w = try MergeConfig.parse(yaml: "merge_method: ties\nbase_model: a\nmodels: [{model: b}]\n")
        XCTAssertThrowsError(try MergePlanner(config: w, sources: sources).plan()) { e in
            XCTAssertTrue("\(e)".contains("needs 'weight'"), "\(e)")
        }
    }

    func testRefusesBadInputsBeforeReadingData() throws {
        let a = try model(layers: 2), b = try model(layers: 3), c = try model(layers: 2, hidden: 6), d = try model(layers: 2)
        var s: [ModelReference: ModelSource] = [ModelReference(path: "a"): a, ModelReference(path: "b"): b, ModelReference(path: "c"): c,
                                                ModelReference(path: "d"): d]
        let layers = try MergeConfig.parse(yaml: "merge_method: linear\nmodels: [{model: a}, {model: b}]\nparameters: {weight: 1}\n")
        XCTAssertThrowsError(try MergePlanner(config: layers, sources: s).plan()) { XCTAssertTrue("\($0)".contains("same number of layers"), "\($0)") }
        let shapes = try MergeConfig.parse(yaml: "merge_method: linear\nmodels: [{model: a}, {model: c}]\nparameters: {weight: 1}\n")
        XCTAssertThrowsError(try MergePlanner(config: shapes, sources: s).plan()) { XCTAssertTrue("\($0)".contains("shapes differ"), "\($0)") }
        let range = try MergeConfig.parse(yaml: "merge_method: passthrough\nslices: [{sources: [{model: a, layer_range: [0, 5]}]}]\n")
        XCTAssertThrowsError(try MergePlanner(config: range, sources: s).plan()) { XCTAssertTrue("\($0)".contains("out of range"), "\($0)") }
        s[ModelReference(path: "a2")] = try model(layers: 2)
        let slerp3 = try MergeConfig.parse(yaml: "merge_method: slerp\nbase_model: a\nmodels: [{model: a}, {model: d}, {model: a2}]\nparameters: {t: 0.5}\n")
        XCTAssertThrowsError(try MergePlanner(config: slerp3, sources: s).plan()) { XCTAssertTrue("\($0)".contains("at most 2"), "\($0)") }
    }

    func testMisspeltParameterIsAnErrorAndUnusedOnesWarn() throws {
        let a = try model(layers: 1), b = try model(layers: 1)
        let sources: [ModelReference: ModelSource] = [ModelReference(path: "a"): a, ModelReference(path: "b"): b]
        let typo = try MergeConfig.parse(yaml: "merge_method: ties\nbase_model: a\nmodels: [{model: b, parameters: {wieght: 1}}]\n")
        XCTAssertThrowsError(try MergePlanner(config: typo, sources: sources).plan()) { e in
            XCTAssertTrue("\(e)".contains("models[0].parameters.wieght") && "\(e)".contains("did you mean 'weight'"), "\(e)")
        }
        let unused = try MergeConfig.parse(yaml: "merge_method: slerp\nbase_model: a\nmodels: [{model: a}, {model: b}]\nparameters: {t: 0.5, int8_mask: true}\n")
        let plan = try MergePlanner(config: unused, sources: sources).plan()
        XCTAssertTrue(plan.warnings.contains { $0.contains("int8_mask") }, "\(plan.warnings)")
    }

    func testNaNInAnInputStopsTheMergeWithItsName() throws {
        let a = try model(layers: 3), b = try model(layers: 3)
        let bad = "model.layers.1.mlp.up_proj.weight"
        if let i = b.tensors.firstIndex(where: { $0.0 == bad }) {
            b.tensors[i].1 = try Tensor(floats: [Float](repeating: .nan, count: 16), shape: [4, 4])
        }
        let config = try MergeConfig.parse(yaml: "merge_method: linear\nmodels: [{model: a}, {model: b}]\nparameters: {weight: 1}\n")
        let sources: [ModelReference: ModelSource] = [ModelReference(path: "a"): a, ModelReference(path: "b"): b]
        XCTAssertThrowsError(try mergeInMemory(config, sources: sources)) { e in
            XCTAssertTrue("\(e)".contains(bad) && "\(e)".contains("NaN"), "\(e)")
        }
    }

    func testGPT2AliasesAndGemma3TiedHeadFromTheArchitectureTables() throws {
        // GPT-2 checkpoints often store names without the `transformer.` prefix; the plan reads them under
        // their alias and writes the canonical name, as mergekit does.
        var t: [(String, Tensor)] = []
        func add(_ n: String, _ shape: [Int]) throws { t.append((n, try Tensor(floats: [Float](repeating: 1, count: shape.reduce(1, *)), shape: shape))) }
        try add("wte.weight", [8, 4]); try add("wpe.weight", [6, 4])
        for w in ["attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight", "attn.c_proj.bias", "ln_1.weight", "ln_1.bias",
                  "ln_2.weight", "ln_2.bias", "mlp.c_proj.weight", "mlp.c_proj.bias", "mlp.c_fc.weight", "mlp.c_fc.bias"] {
            try add("h.0.\(w)", w.hasSuffix("bias") || w.hasPrefix("ln") ? [4] : [4, 4])
        }
        try add("ln_f.weight", [4]); try add("ln_f.bias", [4])
        let gpt2 = InMemoryModel(t, config: try JSON.parse(#"{"architectures": ["GPT2LMHeadModel"], "n_layer": 1}"#))
        let config = try MergeConfig.parse(yaml: "merge_method: linear\nmodels: [{model: g}]\nparameters: {weight: 1}\n")
        let plan = try MergePlanner(config: config, sources: [ModelReference(path: "g"): gpt2]).plan()
        XCTAssertEqual(plan.architecture, "gpt2")
        XCTAssertEqual(plan.layerCountKey, "n_layer")
        let attn = try XCTUnwrap(plan.entries.first { $0.name == "transformer.h.0.attn.c_attn.weight" })
        XCTAssertEqual(attn.inputs.first?.tensor, "h.0.attn.c_attn.weight")
        XCTAssertEqual(plan.entries.first?.name, "transformer.wte.weight")
        XCTAssertEqual(plan.entries.first?.vocabularyAxis, 0)
        XCTAssertNil(plan.entries.first { $0.name == "lm_head.weight" })   // tied: absent in the input, absent in the output

        let gemma = try model(layers: 2, lmHead: false)
        gemma.modelConfig = try JSON.parse(#"{"architectures": ["Gemma3ForCausalLM"], "num_hidden_layers": 2}"#)
        // Gemma 3's layers have q_norm/k_norm and four norms: the llama-shaped stand-in lacks them.
        XCTAssertThrowsError(try MergePlanner(config: try MergeConfig.parse(yaml: "merge_method: linear\nmodels: [{model: m}]\nparameters: {weight: 1}\n"),
                                              sources: [ModelReference(path: "m"): gemma]).plan()) { e in
            XCTAssertTrue("\(e)".contains("q_norm") || "\(e)".contains("pre_feedforward_layernorm"), "\(e)")
        }
    }

    func testPromotesMixedDTypesLikeTorch() {
        XCTAssertEqual(promote([.bf16, .bf16]), .bf16)
        XCTAssertEqual(promote([.bf16, .f16]), .f32)
        XCTAssertEqual(promote([.f32, .bf16]), .f32)
    }

    /// A method-wide parameter (slerp's t) under one model's parameters is ignored, as mergekit ignores it:
    /// alone it leaves t missing (the error says where t belongs), beside a global t it earns a warning.
    func testSharedParameterUnderAModelIsIgnoredWithAWarning() throws {
        let a = try model(layers: 2), b = try model(layers: 2)
        let sources = [ModelReference(path: "a"): a, ModelReference(path: "b"): b]
        let alone = try MergeConfig.parse(yaml: """
        merge_method: slerp
        base_model: a
        models:
          - model: a
          - model: b
            parameters: {t: 0.3}
        """)
        XCTAssertThrowsError(try MergePlanner(config: alone, sources: sources).plan()) {
            XCTAssertTrue("\($0)".contains("parameters.t") && "\($0)".contains("top-level"), "\($0)")
        }
        let both = try MergeConfig.parse(yaml: """
        merge_method: slerp
        base_model: a
        models:
          - model: a
          - model: b
            parameters: {t: 0.3}
        parameters: {t: 0.7}
        """)
        let plan = try MergePlanner(config: both, sources: sources).plan()
        XCTAssertEqual(plan.entries[0].parameters.shared["t"]?.numericValue, 0.7)
        XCTAssertTrue(plan.warnings.contains { $0.contains("models[1].parameters.t") }, "\(plan.warnings)")
    }
}
