import XCTest
@testable import FuseMerge

/// mergekit's YAML schema: parsing, gradients, filters, and errors that name the key path.
final class ConfigTests: XCTestCase {
    func parseError(_ yaml: String) -> String {
        do { _ = try MergeConfig.parse(yaml: yaml); return "no error" } catch { return "\(error)" }
    }

    func testParsesModelsParametersAndDTypes() throws {
        let c = try MergeConfig.parse(yaml: """
        merge_method: ties
        base_model: org/base
        models:
          - model: org/math@v2
            parameters: {weight: 0.5, density: [1, 0.7, 0.1]}
          - model: org/code+loras/x
            parameters:
              weight:
                - {filter: self_attn, value: 0.3}
                - {value: 0.5}
        parameters: {normalize: true, int8_mask: true, lambda: 1e-1}
        dtype: torch.bfloat16
        out_dtype: float16
        tokenizer_source: union
        chat_template: chatml
        """)
        XCTAssertEqual(c.mergeMethod, "ties")
        XCTAssertEqual(c.baseModel, ModelReference(path: "org/base"))
        XCTAssertEqual(c.models?[0].model, ModelReference(path: "org/math", revision: "v2"))
        XCTAssertEqual(c.models?[1].model.lora, "loras/x")
        XCTAssertEqual(c.dtype, .bf16)
        XCTAssertEqual(c.outDType, .f16)
        XCTAssertEqual(c.tokenizerSource, .union)
        XCTAssertEqual(c.models?[0].parameters["density"], .gradient([1, 0.7, 0.1]))
        // PyYAML reads `1e-1` as a string; numeric parameters still read it as a number.
        XCTAssertEqual(c.parameters["lambda"]?.evaluate(tensorName: "x", t: 0, numeric: true)?.numericValue, 0.1)
    }

    func testGradientInterpolationMatchesMergekit() {
        let g = ParameterSetting.gradient([0, 1])
        // 32 layers: layer 16 gets 16/31.
        XCTAssertEqual(g.evaluate(tensorName: "x", t: 16.0 / 31.0, numeric: true)?.numericValue ?? -1, 16.0 / 31.0, accuracy: 1e-12)
        let five = ParameterSetting.gradient([0, 0.5, 0.3, 0.7, 1])
        // t = 0.3: s = 1.2 → 0.8·0.5 + 0.2·0.3
        XCTAssertEqual(five.evaluate(tensorName: "x", t: 0.3, numeric: true)?.numericValue ?? -1, 0.8 * 0.5 + 0.2 * 0.3, accuracy: 1e-12)
        XCTAssertEqual(five.evaluate(tensorName: "x", t: 1, numeric: true)?.numericValue, 1)
        XCTAssertEqual(five.evaluate(tensorName: "x", t: 0, numeric: true)?.numericValue, 0)
        // Non-numeric lists pick an element.
        let labels = ParameterSetting.value(.gradient([.string("a"), .string("b"), .string("c")]))
        XCTAssertEqual(labels.evaluate(tensorName: "x", t: 0.6, numeric: false), .string("b"))
    }

    func testFiltersAreSubstringsFirstMatchWins() throws {
        let c = try MergeConfig.parse(yaml: """
        merge_method: slerp
        base_model: a
        models: [{model: a}, {model: b}]
        parameters:
          t:
            - {filter: self_attn, value: [0, 1]}
            - {filter: mlp, value: 0.25}
            - {value: 0.5}
        """)
        let t = try XCTUnwrap(c.parameters["t"])
        XCTAssertEqual(t.evaluate(tensorName: "model.layers.3.self_attn.q_proj.weight", t: 0.5, numeric: true), .number(0.5))
        XCTAssertEqual(t.evaluate(tensorName: "model.layers.3.self_attn.q_proj.weight", t: 1, numeric: true), .number(1))
        XCTAssertEqual(t.evaluate(tensorName: "model.layers.3.mlp.up_proj.weight", t: 1, numeric: true), .number(0.25))
        XCTAssertEqual(t.evaluate(tensorName: "lm_head.weight", t: 0, numeric: true), .number(0.5))
    }

    func testUnknownKeyNamesPathAndSuggestion() {
        let e = parseError("""
        merge_method: ties
        base_model: a
        models:
          - model: b
            paramters: {weight: 1}
        """)
        XCTAssertTrue(e.contains("models[0].paramters"), e)
        XCTAssertTrue(e.contains("did you mean 'parameters'"), e)
        XCTAssertTrue(e.contains("line 5"), e)
    }

    func testUnknownMethodSuggestsTheClosest() {
        let e = parseError("merge_method: dare-ties\nmodels: [{model: a}]\n")
        XCTAssertTrue(e.contains("unknown method 'dare-ties'"), e)
        XCTAssertTrue(e.contains("did you mean 'dare_ties'"), e)
    }

    func testStructuralErrors() {
        XCTAssertTrue(parseError("merge_method: linear\n").contains("exactly one of 'models', 'slices' or 'modules'"))
        XCTAssertTrue(parseError("merge_method: linear\nmodels: [{model: a}]\ndtype: float8\n").contains("dtype"))
        XCTAssertTrue(parseError("""
        merge_method: passthrough
        slices:
          - sources: [{model: a, layer_range: [4, 2]}]
        """).contains("slices[0].sources[0].layer_range"))
        XCTAssertTrue(parseError("""
        merge_method: linear
        slices:
          - sources: [{model: a, layer_range: [0, 2]}, {model: b, layer_range: [0, 3]}]
        """).contains("same number of layers"))
        XCTAssertTrue(parseError("merge_method: linear\nmodels: [{model: a}]\ntokenizer_source: base\ntokenizer: {source: union}\n")
            .contains("cannot specify both"))
        XCTAssertTrue(parseError("merge_method: linear\nmodels: [{model: a}\n").contains("malformed YAML"))
        XCTAssertTrue(parseError("merge_method: linear\nmodels: [{model: a}]\nchat_template: weird\n").contains("chat_template"))
    }
}
