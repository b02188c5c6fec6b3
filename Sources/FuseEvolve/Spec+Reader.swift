import Foundation
import FuseIO
import FuseEval
import FuseMerge
import Yams

/// Reads YAML nodes, naming the key path and line in every error.
struct SpecReader {
    let directory: String

    func error(_ node: Node?, _ path: String, _ message: String) -> EvolveError {
        .spec(path: path, line: node?.mark?.line, message: message)
    }

    func checkKeys(_ map: Node.Mapping, allowed: [String], path: String) throws {
        for (k, _) in map {
            let key = k.string ?? "?"
            guard !allowed.contains(key) else { continue }
            let hint = didYouMean(key, among: allowed).map { "; did you mean '\($0)'?" } ?? ""
            let p = path.isEmpty ? key : "\(path).\(key)"
            let known = allowed.isEmpty ? "none are allowed here" : "allowed here: \(allowed.joined(separator: ", "))"
            throw EvolveError.spec(path: p, line: k.mark?.line, message: "unknown key '\(key)'\(hint) (\(known))")
        }
    }

    func string(_ node: Node, _ path: String) throws -> String {
        guard let s = node.scalar?.string, !isNull(node) else { throw error(node, path, "expected a string") }
        return s
    }

    func int(_ node: Node, _ path: String, min: Int) throws -> Int {
        guard node.scalar != nil, let i = node.int else { throw error(node, path, "expected an integer") }
        guard i >= min else { throw error(node, path, "must be at least \(min), got \(i)") }
        return i
    }

    func double(_ node: Node, _ path: String, range: ClosedRange<Double>) throws -> Double {
        guard node.scalar != nil, let d = node.float, d.isFinite else { throw error(node, path, "expected a number") }
        guard range.contains(d) else { throw error(node, path, "\(d) is outside [\(range.lowerBound), \(range.upperBound)]") }
        return d
    }

    func bool(_ node: Node, _ path: String) throws -> Bool {
        guard node.scalar != nil, let b = node.bool else { throw error(node, path, "expected true or false") }
        return b
    }

    func choice<T: RawRepresentable & CaseIterable>(_ node: Node, _ path: String) throws -> T where T.RawValue == String {
        let s = try string(node, path)
        let names = T.allCases.map(\.rawValue)
        guard let v = T(rawValue: s) else {
            let hint = didYouMean(s, among: names).map { "; did you mean '\($0)'?" } ?? ""
            throw error(node, path, "unknown value '\(s)'\(hint) (one of \(names.joined(separator: ", ")))")
        }
        return v
    }

    func resolve(_ p: String) -> String {
        let expanded = (p as NSString).expandingTildeInPath
        let full = expanded.hasPrefix("/") ? expanded : directory + "/" + expanded
        return URL(fileURLWithPath: full).standardizedFileURL.path
    }

    func modelPath(_ node: Node, _ path: String) throws -> String {
        let p = resolve(try string(node, path))
        guard FileManager.default.fileExists(atPath: p) else {
            throw error(node, path, "'\(p)' does not exist; give an HF folder or a .gguf file (relative paths start at the spec's folder)")
        }
        return p
    }

    func merger(_ node: Node, _ path: String) throws -> MergerSpec {
        if node.scalar != nil { return MergerSpec(method: try methodName(node, path)) }
        guard let m = node.mapping else { throw error(node, path, "expected a method name or {method, parameters}") }
        try checkKeys(m, allowed: ["method", "parameters", "files"], path: path)
        guard let methodNode = m["method"] else { throw error(node, path + ".method", "missing; e.g. linear, ties or dare_ties") }
        var spec = MergerSpec(method: try methodName(methodNode, path + ".method"))
        // FuseMerge methods declare their parameters: check names here, before any model loads.
        let known = MethodRegistry.method(named: spec.method).map { $0.parameters.filter { $0.kind == .float }.map(\.name) }
        if let p = m["parameters"] {
            guard let pm = p.mapping else { throw error(p, path + ".parameters", "expected a mapping of numbers, e.g. {density: 0.5}") }
            for (k, v) in pm {
                let key = try string(k, path + ".parameters")
                if let known, !known.contains(key) {
                    let hint = didYouMean(key, among: known).map { "; did you mean '\($0)'?" } ?? ""
                    throw error(k, "\(path).parameters.\(key)", "not a numeric parameter of \(spec.method)\(hint) (its parameters: \(known.joined(separator: ", ")))")
                }
                spec.parameters[key] = try double(v, "\(path).parameters.\(key)", range: -1e9...1e9)
            }
        }
        if let f = m["files"] {
            let readsFiles = MethodRegistry.method(named: spec.method)?.parameters.contains { $0.kind == .string } ?? false
            guard readsFiles else { throw error(f, path + ".files", "\(spec.method) reads no files; drop 'files'") }
            guard let fm = f.mapping else { throw error(f, path + ".files", "expected a mapping from name to path") }
            for (k, v) in fm {
                let key = try string(k, path + ".files")
                guard Int(key).map({ $0 >= 0 }) == true else {
                    throw error(k, "\(path).files.\(key)", "keys are individual indices (0, 1, ...: individual k starts as source k)")
                }
                let file = resolve(try string(v, "\(path).files.\(key)"))
                guard FileManager.default.fileExists(atPath: file) else { throw error(v, "\(path).files.\(key)", "'\(file)' does not exist") }
                spec.files[key] = file
            }
        }
        return spec
    }

    func methodName(_ node: Node, _ path: String) throws -> String {
        let m = try string(node, path)
        let known = PopulationMergers.names
        guard known.contains(m) else {
            let hint = didYouMean(m, among: known).map { "; did you mean '\($0)'?" } ?? ""
            throw error(node, path, "unknown merger '\(m)'\(hint) (known: \(known.joined(separator: ", ")))")
        }
        return m
    }

    func tasks(_ node: Node, _ path: String) throws -> [FitnessTask] {
        guard let seq = node.sequence else { throw error(node, path, "expected a list of {task, weight, metric}") }
        return try seq.enumerated().map { k, item in
            let p = "\(path)[\(k)]"
            var weight = 1.0, metric: String?, limit: Int?
            let fileNode: Node
            if item.scalar != nil { fileNode = item } else {
                guard let m = item.mapping else { throw error(item, p, "expected a task file path or {task, weight, metric, limit}") }
                try checkKeys(m, allowed: ["task", "weight", "metric", "limit"], path: p)
                guard let t = m["task"] else { throw error(item, p + ".task", "missing; the path of a `fusekit eval` JSONL file") }
                fileNode = t
                if let w = m["weight"] { weight = try double(w, p + ".weight", range: 0...1e9) }
                guard weight > 0 else { throw error(m["weight"], p + ".weight", "must be positive") }
                if let n = m["metric"] { metric = try string(n, p + ".metric") }
                if let n = m["limit"] { limit = try int(n, p + ".limit", min: 1) }
            }
            let file = resolve(try string(fileNode, p + (item.scalar != nil ? "" : ".task")))
            let task: TaskFile
            do { task = try TaskFile(path: file) } catch {
                throw EvolveError.spec(path: p, line: fileNode.mark?.line, message: "\(error)")
            }
            let allowed = FitnessTask.metrics(for: task.kind)
            let chosen = metric ?? allowed[0]
            guard allowed.contains(chosen) else {
                let hint = didYouMean(chosen, among: allowed).map { "; did you mean '\($0)'?" } ?? ""
                throw error(item, p + ".metric", "'\(chosen)' is not a metric of a \(task.kind.rawValue) task\(hint) (one of \(allowed.joined(separator: ", ")))")
            }
            return FitnessTask(path: file, weight: weight, metric: chosen, limit: limit, task: task)
        }
    }
}

/// A plain YAML null (`~`, `null`, or nothing).
func isNull(_ node: Node) -> Bool {
    if let s = node.scalar, s.style == .plain { return ["", "~", "null", "Null", "NULL"].contains(s.string) }
    return false
}
