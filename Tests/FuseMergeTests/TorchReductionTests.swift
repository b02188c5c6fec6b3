import Foundation
import XCTest
import FuseIO
import FuseTensor
@testable import FuseMerge

/// torch's summation order for norms and sums (Precision.swift) against torch 2.15 itself, on vectors
/// where torch's result is NOT the exactly rounded one (Tools/fixtures/merge_fixtures.py,
/// make_torch_reductions): reproducing the last bit is what keeps karcher, slerp, nuslerp, multislerp and
/// model_stock bit-equal to mergekit in bf16/f16 (the random cross-check found each of them).
final class TorchReductionTests: XCTestCase {
    func vectors() throws -> WeightStore {
        let path = fixturePath("merge") + "/reductions.safetensors"
        guard FileManager.default.fileExists(atPath: path) else { throw XCTSkip("fixtures missing: run Tools/fixtures/merge_fixtures.py") }
        return try WeightStore(path: path)
    }

    func check(_ name: String, _ reduce: (UnsafeMutableBufferPointer<Float>) -> Float, exact: ([Float]) -> Float) throws {
        let store = try vectors()
        var x = try store.tensor(name).floats()
        let expected = try store.tensor(name + ".torch").floats()[0]
        let ours = x.withUnsafeMutableBufferPointer { reduce($0) }
        XCTAssertEqual(ours.bitPattern, expected.bitPattern, "\(name): ours \(ours), torch \(expected)")
        XCTAssertNotEqual(exact(x).bitPattern, expected.bitPattern, "\(name): the exactly rounded value should differ from torch's here")
    }

    func testFloat32NormsAndSumsFollowTorchOrder() throws {
        for n in [1600, 4093, 6007] {
            try check("norm_f32_\(n)", { torchVectorNorm($0) }, exact: { Float($0.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()) })
            try check("sum_f32_\(n)", { torchSum($0) }, exact: { Float($0.reduce(0.0) { $0 + Double($1) }) })
        }
    }

    func testHalfNormsAreFloat32SumsRoundedOnce() throws {
        try check("norm_f16", { torchNorm($0, .f16) }, exact: { Precision.f16.r(Float($0.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot())) })
        try check("norm_bf16", { torchNorm($0, .bf16) }, exact: { Precision.bf16.r(Float($0.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot())) })
    }
}
