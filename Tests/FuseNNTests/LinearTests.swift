import Foundation
import XCTest
import FuseIO
import FuseNN
import FuseTensor
import CFuseKernels

func fixturePath(_ relative: String, file: String = #filePath) -> String {
    URL(fileURLWithPath: file).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures").appendingPathComponent(relative).path
}

/// The fused dequantize-and-dot kernels and Linear over every stored dtype, against gguf-py's
/// dequantizers and an f64 matrix product (Tools/fixtures/runtime_fixtures.py, quant.safetensors).
final class LinearTests: XCTestCase {
    let types: [(String, DType)] = [("q4_0", .q4_0), ("q4_1", .q4_1), ("q5_0", .q5_0), ("q5_1", .q5_1), ("q8_0", .q8_0),
                                    ("q4_k", .q4_K), ("q5_k", .q5_K), ("q6_k", .q6_K), ("f16", .f16), ("bf16", .bf16)]

    func weight(_ store: WeightStore, _ key: String, _ dtype: DType) throws -> Tensor {
        let raw = try store.tensor(key + ".blocks")
        return try Tensor(dtype: dtype, shape: [8, 512], buffer: raw.buffer)
    }

    /// Dequantization is bit-exact with gguf-py (ggml's multiplication order).
    func testDequantizeBitExact() throws {
        let store = try WeightStore(path: fixturePath("runtime/quant.safetensors"))
        for (key, dtype) in types {
            let w = try weight(store, key, dtype)
            let expected = try store.floats(key + ".dequant")
            var got = [Float](repeating: 0, count: 8 * 512)
            let rowBytes = dtype.byteCount(elements: 512)!
            for r in 0..<8 {
                got.withUnsafeMutableBufferPointer { fk_dequant_row(dtype.traits.ggmlType!, w.buffer.base + r * rowBytes, $0.baseAddress! + r * 512, 512) }
            }
            XCTAssertEqual(got.map(\.bitPattern), expected.map(\.bitPattern), "\(key) dequantization")
        }
    }

    /// Linear on 1, 3 (fused row kernel, f32 activations) and 20 rows (panel + sgemm) equals x · Wᵀ in f64.
    func testLinearEveryDTypeAndPath() throws {
        Linear.quantizeActivations = false
        defer { Linear.quantizeActivations = true }
        let store = try WeightStore(path: fixturePath("runtime/quant.safetensors"))
        let x3 = try store.floats("x")
        for (key, dtype) in types {
            let linear = try Linear(name: key, weight: weight(store, key, dtype))
            let expected = try store.floats(key + ".matmul")
            for rows in [1, 3] {
                var y = [Float](repeating: 0, count: rows * 8)
                y.withUnsafeMutableBufferPointer { linear.forward(x3, rows: rows, into: $0.baseAddress!) }
                for i in 0..<rows * 8 {
                    XCTAssertEqual(y[i], expected[i], accuracy: 2e-4 * max(1, abs(expected[i])), "\(key) rows \(rows) element \(i)")
                }
            }
            // 20 rows: the panel path, checked against the slow reference.
            var x20 = [Float]()
            for r in 0..<20 {
                let scale = Float(r + 1) / 10
                x20 += x3[(r % 3) * 512..<(r % 3 + 1) * 512].map { $0 * scale }
            }
            var y = [Float](repeating: 0, count: 20 * 8)
            y.withUnsafeMutableBufferPointer { linear.forward(x20, rows: 20, into: $0.baseAddress!) }
            let ref = linear.forwardReference(x20, rows: 20)
            for i in y.indices { XCTAssertEqual(y[i], ref[i], accuracy: 2e-4 * max(1, abs(ref[i])), "\(key) panel path element \(i)") }
        }
    }

    /// f32 Linear with bias on odd shapes: fused row kernel and sgemm agree with the f64 reference.
    func testF32OddShapesWithBias() throws {
        var rng = SeededRNG(seed: 3, name: "linear", chunk: 0)
        for (out, inF) in [(1, 1), (7, 13), (33, 65), (17, 4099)] {
            let w = (0..<(out * inF)).map { _ in Float.random(in: -1...1, using: &rng) }
            let b = (0..<out).map { _ in Float.random(in: -1...1, using: &rng) }
            let linear = try Linear(name: "w", weight: Tensor(floats: w, shape: [out, inF]), bias: b)
            for rows in [1, 2, 9] {
                let x = (0..<(rows * inF)).map { _ in Float.random(in: -1...1, using: &rng) }
                var y = [Float](repeating: 0, count: rows * out)
                y.withUnsafeMutableBufferPointer { linear.forward(x, rows: rows, into: $0.baseAddress!) }
                let ref = linear.forwardReference(x, rows: rows)
                for i in y.indices { XCTAssertEqual(y[i], ref[i], accuracy: 1e-5 * Float(inF).squareRoot() * 4, "\(out)x\(inF) rows \(rows)") }
            }
        }
    }

    /// Fusing q|k|v into one weight gives the same outputs as three products.
    func testFusedLinearEqualsParts() throws {
        var rng = SeededRNG(seed: 4, name: "fused", chunk: 0)
        let parts = try [8, 4, 4].enumerated().map { i, out in
            try Linear(name: "p\(i)", weight: Tensor(floats: (0..<(out * 16)).map { _ in Float.random(in: -1...1, using: &rng) }, shape: [out, 16]),
                       bias: i == 1 ? nil : (0..<out).map { _ in Float.random(in: -1...1, using: &rng) })
        }
        let fused = try Linear.fused(parts, name: "qkv")
        let x = (0..<(5 * 16)).map { _ in Float.random(in: -1...1, using: &rng) }
        var y = [Float](repeating: 0, count: 5 * 16)
        y.withUnsafeMutableBufferPointer { fused.forward(x, rows: 5, into: $0.baseAddress!) }
        var col = 0
        for p in parts {
            let ref = p.forwardReference(x, rows: 5)
            for r in 0..<5 { for j in 0..<p.outFeatures { XCTAssertEqual(y[r * 16 + col + j], ref[r * p.outFeatures + j], accuracy: 1e-5) } }
            col += p.outFeatures
        }
    }

    func testBadWeightsAreRefused() throws {
        let t = try Tensor(floats: [1, 2, 3], shape: [3])
        XCTAssertThrowsError(try Linear(name: "w1d", weight: t)) { XCTAssertEqual($0 as? NNError, .shapeMismatch(tensor: "w1d", expected: [-1, -1], got: [3])) }
        let q = try Tensor(dtype: .q2_K, shape: [1, 256], buffer: Buffer(byteCount: 84))
        XCTAssertThrowsError(try Linear(name: "q2", weight: q)) { XCTAssertEqual($0 as? NNError, .unsupportedDType(tensor: "q2", dtype: .q2_K)) }
        let w = try Tensor(floats: [1, 2, 3, 4], shape: [2, 2])
        XCTAssertThrowsError(try Linear(name: "b", weight: w, bias: [1])) { XCTAssertEqual($0 as? NNError, .shapeMismatch(tensor: "b bias", expected: [2], got: [1])) }
    }
}

/// The integer (VNNI) decode kernels with 8-bit activations: within the activation-quantization error
/// of the f64 product, and bit-for-bit the same whatever the thread count.
final class QuantizedActivationTests: XCTestCase {
    func testIntegerKernelsAgainstF64Product() throws {
        let store = try WeightStore(path: fixturePath("runtime/quant.safetensors"))
        let x3 = try store.floats("x")
        for (key, dtype) in [("q4_0", DType.q4_0), ("q4_1", .q4_1), ("q5_0", .q5_0), ("q8_0", .q8_0), ("q4_k", .q4_K), ("q6_k", .q6_K)] {
            guard fk_qdot_supported(dtype.traits.ggmlType!) != 0 else { continue }
          // 8 rows: the per-row kernels; 32 rows (the 8 repeated): the 16-row panels where supported.
          for repeats in [1, 4] {
            let raw = try store.tensor(key + ".blocks")
            let stacked = Buffer(byteCount: raw.byteCount * repeats)
            for c in 0..<repeats { stacked.base.advanced(by: c * raw.byteCount).copyMemory(from: raw.buffer.base, byteCount: raw.byteCount) }
            let linear = try Linear(name: key, weight: Tensor(dtype: dtype, shape: [8 * repeats, 512], buffer: stacked))
            XCTAssertEqual(linear.hasDecodePanels, repeats == 4, key)
            let expected8 = try store.floats(key + ".matmul")
            let deq8 = try store.floats(key + ".dequant")
            let outs = 8 * repeats
            let expected = (0..<3).flatMap { r in (0..<outs).map { expected8[r * 8 + $0 % 8] } }
            let deq = (0..<outs).flatMap { j in deq8[(j % 8) * 512..<(j % 8 + 1) * 512] }
            var y = [Float](repeating: 0, count: 3 * outs)
            y.withUnsafeMutableBufferPointer { linear.forward(x3, rows: 3, into: $0.baseAddress!) }
            for r in 0..<3 {
                for j in 0..<outs {
                    // error bound: each activation is off by at most half a step of its block's scale
                    var bound = 0.0
                    for b in 0..<16 {
                        let xs = x3[(r * 512 + b * 32)..<(r * 512 + b * 32 + 32)]
                        let step = Double(xs.map { abs($0) }.max()!) / 127
                        bound += (0..<32).map { abs(Double(deq[j * 512 + b * 32 + $0])) }.reduce(0, +) * step / 2
                    }
                    XCTAssertEqual(Double(y[r * outs + j]), Double(expected[r * outs + j]), accuracy: bound + 1e-3, "\(key) row \(r) out \(j)")
                }
            }
            // Exact check: the kernel equals the f64 product with the 8-bit activations it used.
            for r in 0..<3 {
                var xq = [Double](repeating: 0, count: 512)
                for b in 0..<16 {
                    let xs = Array(x3[(r * 512 + b * 32)..<(r * 512 + b * 32 + 32)])
                    let d = xs.map { abs($0) }.max()! / 127
                    for i in 0..<32 { xq[b * 32 + i] = Double((xs[i] * (d > 0 ? 1 / d : 0)).rounded(.toNearestOrEven)) * Double(d) }
                }
                for j in 0..<outs {
                    let exact = (0..<512).map { Double(deq[j * 512 + $0]) * xq[$0] }.reduce(0, +)
                    XCTAssertEqual(Double(y[r * outs + j]), exact, accuracy: 1e-4 * max(1, abs(exact)), "\(key) row \(r) out \(j) vs 8-bit activations")
                }
            }
            let saved = Parallel.threads
            Parallel.threads = 1
            var y1 = [Float](repeating: 0, count: 3 * outs)
            y1.withUnsafeMutableBufferPointer { linear.forward(x3, rows: 3, into: $0.baseAddress!) }
            Parallel.threads = saved
            XCTAssertEqual(y1, y, "\(key): thread count changed the result")
          }
        }
    }
}
