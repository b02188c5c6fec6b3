import FuseTensor

// MARK: - The method protocol
//
// A method is a value: its YAML name, paper URL, parameter specs (with scope and default), its input
// contract, and one function that merges one tensor over Float32 buffers. Mirrors mergekit 0.1.5
// `merge_methods/base.py` (MergeMethodSpec, InputContract, OptionalTensorPolicy).

/// Which inputs a parameter binds to: once per tensor (`t`, `normalize`), once per input, or once per
/// non-base input (`weight`, `density` in the task-arithmetic family).
public enum ParameterScope: Sendable { case shared, input, nonBase }

public enum ParameterKind: Sendable { case float, int, bool, string }

public struct ParameterSpec: Sendable {
    public enum Default: Sendable { case required, value(Scalar), absent }
    public let name: String
    public let kind: ParameterKind
    public let scope: ParameterScope
    public let defaultValue: Default

    public init(_ name: String, _ kind: ParameterKind, _ scope: ParameterScope, default d: Default) {
        self.name = name
        self.kind = kind
        self.scope = scope
        self.defaultValue = d
    }
    static func float(_ name: String, _ scope: ParameterScope, _ d: Double?) -> ParameterSpec {
        ParameterSpec(name, .float, scope, default: d.map { .value(.number($0)) } ?? .required)
    }
    static func bool(_ name: String, _ d: Bool) -> ParameterSpec { ParameterSpec(name, .bool, .shared, default: .value(.bool(d))) }
    /// A string such as a statistics file path (fisher, regmean).
    static func string(_ name: String, _ scope: ParameterScope) -> ParameterSpec { ParameterSpec(name, .string, scope, default: .required) }
}

public enum BasePolicy: Sendable { case optional, required, ignored }

/// How many inputs a tensor group may have (mergekit InputContract).
public struct InputContract: Sendable {
    public var base: BasePolicy = .ignored
    public var minInputs = 1
    public var maxInputs: Int?
    public var minNonBase: Int?
    public var maxNonBase: Int?
}

/// What to do with an optional weight (e.g. lm_head) that only some inputs have.
public enum OptionalTensorPolicy: Sendable { case error, passthroughSingleton, passthroughBaseSingleton, baseOrSkip }

/// Parameter values resolved for one output tensor: shared ones, and one dictionary per input (in input
/// order; the base gets only input-scoped ones). Validated at plan time, so reads cannot fail.
public struct ResolvedParameters: Equatable, Sendable {
    public var shared: [String: Scalar] = [:]
    public var perInput: [[String: Scalar]] = []

    public func double(_ name: String) -> Double { shared[name]?.numericValue ?? 0 }
    public func float(_ name: String) -> Float { Float(double(name)) }
    public func bool(_ name: String) -> Bool { if case let .bool(b)? = shared[name] { return b }; return (shared[name]?.numericValue ?? 0) != 0 }
    public func double(_ name: String, input i: Int) -> Double? { perInput[i][name]?.numericValue }
    public func string(_ name: String, input i: Int) -> String? { i < perInput.count ? perInput[i][name].map(\.description) : nil }
}

/// One tensor's inputs in Float32 (already rounded to the computation dtype), the output buffer, and
/// what the method needs to know about the tensor. Methods may overwrite `inputs` as scratch.
public final class MergeGroup {
    public let name: String
    public let shape: [Int]
    public let inputs: [UnsafeMutableBufferPointer<Float>]
    /// Display names of the inputs, for errors.
    public let inputNames: [String]
    public let baseIndex: Int?
    public let output: UnsafeMutableBufferPointer<Float>
    /// The dtype mergekit would run the torch ops in; `Precision.r` emulates its rounding after each op.
    public let precision: Precision
    public let seed: UInt64
    /// Each input's tensor name in its own model (differs from `name` when slices remap layers); the
    /// statistics methods look their per-model statistics up by it.
    public let inputTensors: [String]
    /// Where relative paths in parameters resolve (the merge's working directory); nil: the current one.
    public let workingDirectory: String?

    public init(name: String, shape: [Int], inputs: [UnsafeMutableBufferPointer<Float>], inputNames: [String],
                baseIndex: Int?, output: UnsafeMutableBufferPointer<Float>, precision: Precision, seed: UInt64,
                inputTensors: [String]? = nil, workingDirectory: String? = nil) {
        self.inputTensors = inputTensors ?? inputs.map { _ in name }
        self.workingDirectory = workingDirectory
        self.name = name
        self.shape = shape
        self.inputs = inputs
        self.inputNames = inputNames
        self.baseIndex = baseIndex
        self.output = output
        self.precision = precision
        self.seed = seed
    }

    public var count: Int { output.count }
    /// Indices of the non-base inputs, in order.
    public var nonBase: [Int] { inputs.indices.filter { $0 != baseIndex } }
    /// Rows and columns when the tensor is viewed as rows along its last axis (a 1-D tensor is one row).
    public var rowsAndColumns: (rows: Int, cols: Int) {
        let cols = shape.last ?? 1
        return (cols == 0 ? 0 : count / cols, cols)
    }

    func copyToOutput(_ i: Int) {
        _ = output.update(fromContentsOf: inputs[i])
    }
}

public protocol MergeMethod: Sendable {
    var name: String { get }
    var prettyName: String { get }
    var referenceURL: String? { get }
    var parameters: [ParameterSpec] { get }
    var contract: InputContract { get }
    var optionalTensorPolicy: OptionalTensorPolicy { get }
    /// True when the output depends on `--seed`.
    var isRandom: Bool { get }
    /// The dtype of the method's result when its ops run in `compute` (mergekit's type promotion makes a
    /// few methods return Float32 whatever the inputs); the output is written in it unless out_dtype is set.
    func resultDType(compute: DType) -> DType
    /// True when `output` may be the base input's buffer (saves one tensor of memory).
    var writesOverBase: Bool { get }
    /// Merges `group.inputs` into `group.output`.
    func merge(_ group: MergeGroup, _ p: ResolvedParameters) throws
}

extension MergeMethod {
    public var referenceURL: String? { nil }
    public var optionalTensorPolicy: OptionalTensorPolicy { .error }
    public var isRandom: Bool { false }
    public func resultDType(compute: DType) -> DType { compute }
    public var writesOverBase: Bool { false }
}

// MARK: - Registry: one line per method (mergekit 0.1.5 `merge_methods/registry.py`)

public enum MethodRegistry {
    public static let all: [any MergeMethod] = [
        Linear(),
        TaskArithmeticFamily.taskArithmetic,
        TaskArithmeticFamily.ties,
        TaskArithmeticFamily.dareTies,
        TaskArithmeticFamily.dareLinear,
        TaskArithmeticFamily.breadcrumbs,
        TaskArithmeticFamily.breadcrumbsTies,
        TaskArithmeticFamily.della,
        TaskArithmeticFamily.dellaLinear,
        SCE(),
        RAM(),
        RAMPlusTL(),
        Slerp(),
        NuSlerp(),
        MultiSlerp(),
        Karcher(),
        ModelStock(),
        NearSwap(),
        ArceeFusion(),
        Passthrough(),
        FisherMerge(),
        RegMean(),
    ]

    public static var names: [String] { all.map(\.name) }

    public static func method(named name: String) -> (any MergeMethod)? { all.first { $0.name == name } }
}
