/// One YAML scalar as a parameter value. Numbers keep Double precision (mergekit evaluates gradients in
/// Python floats); numeric strings such as PyYAML's `1e-5` stay strings until a parameter's type reads them.
public enum Scalar: Equatable, Sendable, CustomStringConvertible {
    case bool(Bool)
    case number(Double)
    case string(String)

    public var description: String {
        switch self {
        case let .bool(b): return String(b)
        case let .number(d): return d == d.rounded() && abs(d) < 1e15 ? String(Int(d)) : String(d)
        case let .string(s): return s
        }
    }
}

/// A scalar, or a gradient: a list of anchors spread evenly over the layers of a slice.
public enum ScalarOrGradient: Equatable, Sendable {
    case scalar(Scalar)
    case gradient([Scalar])
}

/// A parameter value as written in YAML: a value, or a list of `{filter, value}` entries tried in order.
public enum ParameterSetting: Equatable, Sendable {
    case value(ScalarOrGradient)
    case conditional([(filter: String?, value: ScalarOrGradient)])

    public static func == (a: ParameterSetting, b: ParameterSetting) -> Bool {
        switch (a, b) {
        case let (.value(x), .value(y)): return x == y
        case let (.conditional(x), .conditional(y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.filter == $1.filter && $0.value == $1.value }
        default: return false
        }
    }

    public static func number(_ d: Double) -> ParameterSetting { .value(.scalar(.number(d))) }
    public static func bool(_ b: Bool) -> ParameterSetting { .value(.scalar(.bool(b))) }
    public static func gradient(_ ds: [Double]) -> ParameterSetting { .value(.gradient(ds.map { .number($0) })) }
}

public typealias ParameterSettings = [String: ParameterSetting]

extension ParameterSetting {
    /// The value at layer position `t` for a tensor named `tensorName`, exactly as mergekit's
    /// `evaluate_setting`: conditional entries match when the filter is absent, `*`, or a plain substring
    /// of the name (first match wins); numeric gradients interpolate piecewise-linearly with
    /// s = t·(n−1), i0 = ⌊s⌋, i1 = min(n−1, i0+1); non-numeric lists pick element ⌊t·(n−1)⌋.
    /// nil means "not set at this level". `numeric` says whether the parameter is a number, which decides
    /// whether numeric strings interpolate.
    public func evaluate(tensorName: String, t: Double, numeric: Bool) -> Scalar? {
        switch self {
        case let .value(v): return Self.evaluate(v, t: t, numeric: numeric)
        case let .conditional(entries):
            for entry in entries {
                if entry.filter == nil || entry.filter == "*" || (!tensorName.isEmpty && tensorName.contains(entry.filter ?? "")) {
                    return Self.evaluate(entry.value, t: t, numeric: numeric)
                }
            }
            return nil
        }
    }

    static func evaluate(_ v: ScalarOrGradient, t: Double, numeric: Bool) -> Scalar? {
        switch v {
        case let .scalar(s): return s
        case let .gradient(list):
            guard !list.isEmpty else { return nil }
            let n = list.count
            let numbers = list.map { numeric ? $0.numericValue : $0.strictNumber }
            if numbers.allSatisfy({ $0 != nil }) {
                let scaled = t * Double(n - 1)
                let i0 = Int(scaled)
                let i1 = min(n - 1, i0 + 1)
                let frac = scaled - Double(i0)
                let a = numbers[i0] ?? 0, b = numbers[i1] ?? 0
                return .number((1 - frac) * a + frac * b)
            }
            return list[min(n - 1, Int(t * Double(n - 1)))]
        }
    }
}

extension Scalar {
    /// A number, or a string that reads as one (pydantic's lax float parsing). Booleans are not numbers here.
    var numericValue: Double? {
        switch self {
        case let .number(d): return d
        case let .string(s): return Double(s.trimmingCharacters(in: .whitespaces))
        case .bool: return nil
        }
    }
    var strictNumber: Double? { if case let .number(d) = self { return d }; return nil }
}
