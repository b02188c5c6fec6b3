// Typed reads of one tokenizer.json object, with errors that name the file and key path. The JSON
// is decoded into the stage structs once, at load; nothing looks keys up while encoding.
import FuseIO

struct Config {
    let json: JSON
    let path: String
    let key: String

    init(_ json: JSON, path: String, key: String) throws {
        guard json.object != nil else { throw TokenizerError.badValue(path: path, key: key, reason: "expected an object") }
        self.json = json; self.path = path; self.key = key
    }

    func sub(_ k: String) -> String { key.isEmpty ? k : key + "." + k }

    func has(_ k: String) -> Bool { if let v = json[k] { return !v.isNull }; return false }

    func value(_ k: String) throws -> JSON {
        guard let v = json[k] else { throw TokenizerError.missingKey(path: path, key: sub(k)) }
        return v
    }

    func string(_ k: String) throws -> String {
        guard let s = try value(k).string else { throw TokenizerError.badValue(path: path, key: sub(k), reason: "expected a string") }
        return s
    }

    func optionalString(_ k: String) throws -> String? {
        guard let v = json[k], !v.isNull else { return nil }
        guard let s = v.string else { throw TokenizerError.badValue(path: path, key: sub(k), reason: "expected a string or null") }
        return s
    }

    func bool(_ k: String, default d: Bool) throws -> Bool { try optionalBool(k) ?? d }

    func optionalBool(_ k: String) throws -> Bool? {
        guard let v = json[k], !v.isNull else { return nil }
        guard let b = v.bool else { throw TokenizerError.badValue(path: path, key: sub(k), reason: "expected true or false") }
        return b
    }

    func int(_ k: String) throws -> Int {
        guard let i = try value(k).int else { throw TokenizerError.badValue(path: path, key: sub(k), reason: "expected an integer") }
        return i
    }

    func optionalInt(_ k: String) throws -> Int? {
        guard let v = json[k], !v.isNull else { return nil }
        guard let i = v.int else { throw TokenizerError.badValue(path: path, key: sub(k), reason: "expected an integer or null") }
        return i
    }

    func array(_ k: String) throws -> [JSON] {
        guard let a = try value(k).array else { throw TokenizerError.badValue(path: path, key: sub(k), reason: "expected an array") }
        return a
    }

    func object(_ k: String) throws -> [(String, JSON)] {
        guard let o = try value(k).object else { throw TokenizerError.badValue(path: path, key: sub(k), reason: "expected an object") }
        return o
    }

    /// A `{"String": s}` or `{"Regex": r}` pattern; regexes must be ones FuseKit has an exact matcher for.
    func pattern(_ k: String) throws -> String {
        let v = try value(k)
        if let s = v["String"]?.string { return s }
        if let r = v["Regex"]?.string { throw TokenizerError.unsupportedPattern(path: path, key: sub(k), pattern: r) }
        if let s = v.string { return s }
        throw TokenizerError.badValue(path: path, key: sub(k), reason: "expected {\"String\": ...} or {\"Regex\": ...}")
    }
}
