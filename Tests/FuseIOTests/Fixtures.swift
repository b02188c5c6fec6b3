import Foundation

/// Path of a committed fixture under Tests/Fixtures (written by Tools/fixtures/*.py).
func fixturePath(_ relative: String, file: String = #filePath) -> String {
    URL(fileURLWithPath: file).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures").appendingPathComponent(relative).path
}

/// Little-endian reader over a fixture file's bytes.
struct FixtureReader {
    let data: [UInt8]
    var offset = 0
    init(path: String) throws { data = Array(try Data(contentsOf: URL(fileURLWithPath: path))) }
    mutating func magic(_ m: String) -> Bool {
        let ok = Array(data[offset..<offset + m.utf8.count]) == Array(m.utf8)
        offset += m.utf8.count
        return ok
    }
    mutating func u32() -> UInt32 { defer { offset += 4 }; return data.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: UInt32.self) } }
    mutating func u16() -> UInt16 { defer { offset += 2 }; return data.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: UInt16.self) } }
    mutating func floats(_ n: Int) -> [Float] { (0..<n).map { _ in Float(bitPattern: u32()) } }
}
