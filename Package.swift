// swift-tools-version:6.0
// FuseKit: fuse the knowledge of language models on a CPU. See README.md and ../shared/DESIGN.md.
import PackageDescription

/// Release builds drop overflow and bounds checks in the numeric modules; every path that input can
/// reach validates sizes before it touches memory, so the checks are redundant there.
let fastMath: [SwiftSetting] = [.unsafeFlags(["-Ounchecked", "-wmo"], .when(configuration: .release))]
let cOptimize: [CSetting] = [.unsafeFlags(["-O3", "-fno-math-errno"])]

let package = Package(
    name: "FuseKit",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "fusekit", targets: ["fusekit"]),
        .library(name: "FuseIO", targets: ["FuseIO"]),
        .library(name: "FuseTokenizers", targets: ["FuseTokenizers"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
    ],
    targets: [
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev", "pkg-config"])]),
        .target(name: "CFuseKernels", cSettings: cOptimize),
        .target(name: "FuseTensor", dependencies: ["COpenBLAS", "CFuseKernels"], swiftSettings: fastMath),
        .target(name: "FuseIO", dependencies: ["FuseTensor"], swiftSettings: fastMath),
        .target(name: "FuseTokenizers", dependencies: ["FuseIO"], swiftSettings: fastMath),
        .target(name: "FuseMerge", dependencies: [
            "FuseIO", "FuseTensor", "CFuseKernels", .product(name: "Yams", package: "Yams"),
        ], swiftSettings: fastMath),
        .target(name: "FuseNN", dependencies: ["FuseTensor", "CFuseKernels", "COpenBLAS"], swiftSettings: fastMath),
        .target(name: "FuseModels", dependencies: ["FuseNN", "FuseIO", "FuseTensor", "CFuseKernels"], swiftSettings: fastMath),
        .target(name: "FuseEval", dependencies: ["FuseModels", "FuseNN", "FuseIO"], swiftSettings: fastMath),
        .target(name: "FuseReport", dependencies: ["FuseMerge", "FuseIO", "FuseTensor", "CFuseKernels"], swiftSettings: fastMath),
        .target(name: "FuseEvolve", dependencies: [
            "FuseMerge", "FuseModels", "FuseEval", "FuseIO", "FuseTensor", .product(name: "Yams", package: "Yams"),
        ], swiftSettings: fastMath),
        .target(name: "FuseTrain", dependencies: ["FuseNN", "FuseIO", "FuseTensor", "FuseTokenizers", "FuseModels"], swiftSettings: fastMath),
        .target(name: "FuseTransfer", dependencies: [
            "FuseNN", "FuseIO", "FuseTensor", "FuseEval", "FuseModels", "FuseTrain", "FuseTokenizers", .product(name: "Yams", package: "Yams"),
        ], swiftSettings: fastMath),
        .target(name: "FuseDistill", dependencies: [
            "FuseIO", "FuseTensor", "FuseTokenizers", "FuseNN", "FuseModels", "FuseMerge", "FuseTrain", "FuseEval", .product(name: "Yams", package: "Yams"),
        ], swiftSettings: fastMath),
        .executableTarget(name: "fusekit", dependencies: [
            "FuseIO", "FuseTensor", "FuseTokenizers", "FuseMerge", "FuseModels", "FuseEval", "FuseReport", "FuseEvolve", "FuseTrain", "FuseTransfer", "FuseDistill",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], swiftSettings: fastMath),
        .executableTarget(name: "fuzz-formats", dependencies: ["FuseIO", "FuseTensor"], swiftSettings: fastMath),
        .executableTarget(name: "bench-train", dependencies: ["FuseModels", "FuseNN", "FuseTensor", "CFuseKernels"], swiftSettings: fastMath),
        .testTarget(name: "FuseTensorTests", dependencies: ["FuseTensor"]),
        .testTarget(name: "FuseIOTests", dependencies: ["FuseIO", "FuseTensor"]),
        .testTarget(name: "FuseTokenizersTests", dependencies: ["FuseTokenizers", "FuseIO"],
                    resources: [.copy("../Fixtures/tokenizers")]),
        .testTarget(name: "FuseMergeTests", dependencies: ["FuseMerge", "FuseIO", "FuseTensor"]),
        .testTarget(name: "FuseNNTests", dependencies: ["FuseNN", "FuseIO", "FuseTensor", "CFuseKernels"]),
        .testTarget(name: "FuseModelsTests", dependencies: ["FuseModels", "FuseNN", "FuseIO", "FuseTensor"]),
        .testTarget(name: "FuseEvalTests", dependencies: ["FuseEval", "FuseModels"]),
        .testTarget(name: "FuseReportTests", dependencies: ["FuseReport", "FuseMerge", "FuseIO", "FuseTensor"]),
        .testTarget(name: "FuseEvolveTests", dependencies: ["FuseEvolve", "FuseMerge", "FuseEval", "FuseModels", "FuseIO", "FuseTensor"],
                    resources: [.copy("../Fixtures/evolve")]),
        .testTarget(name: "FuseTrainTests", dependencies: ["FuseTrain", "FuseNN", "FuseIO", "FuseTensor", "FuseTokenizers", "FuseModels"],
                    resources: [.copy("../Fixtures/train")]),
        // Helpers several test targets share (tiny models written to disk).
        .target(name: "FuseTestSupport", dependencies: ["FuseIO", "FuseTensor"], path: "Tests/FuseTestSupport"),
        .testTarget(name: "FuseTransferTests", dependencies: ["FuseTransfer", "FuseTrain", "FuseModels", "FuseNN", "FuseTensor", "FuseIO", "FuseTestSupport"]),
        .testTarget(name: "FuseDistillTests", dependencies: ["FuseDistill", "FuseTokenizers", "FuseModels", "FuseNN", "FuseIO", "FuseTrain", "FuseMerge", "FuseTensor", "FuseEval",
                                                            "FuseTestSupport"],
                    resources: [.copy("../Fixtures/distill")]),
    ],
    swiftLanguageModes: [.v5]
)
