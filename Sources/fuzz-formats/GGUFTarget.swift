// The GGUF fuzz target: seed files from GGUFWriter, and what is done with an accepted input.
import Foundation
import FuseIO
import FuseTensor

/// Where the target folds what it read, so the optimizer cannot drop the reads.
nonisolated(unsafe) var fuzzSink = 0

enum GGUFTarget {
    /// Valid seeds covering every value type, nested and string arrays, every block type, several
    /// alignments, zero-sized and scalar tensors, plus the gguf-py fixtures when run from the
    /// repository root.
    static func seeds() throws -> [[UInt8]] {
        var rng = SeededRNG(seed: 0x6767_7566)
        func random(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) } }
        func sane(_ dtype: DType, _ ne: [Int]) -> [UInt8] {
            var bytes = random(dtype.byteCount(elements: elementCount(ne) ?? 0) ?? 0)
            if dtype == .f32 { bytes = (0..<bytes.count / 4).flatMap { i in withUnsafeBytes(of: Float(i) * 0.5) { Array($0) } } }
            return bytes
        }
        var seeds: [[UInt8]] = []

        var full = GGUFWriter()
        full.set("general.architecture", .string("llama"))
        full.set("llama.block_count", .uint32(2))
        full.set("llama.context_length", .uint64(8192))
        full.set("llama.rope.freq_base", .float32(10000))
        full.set("f64", .float64(1e-5))
        full.set("i8", .int8(-1)); full.set("u16", .uint16(7)); full.set("i16", .int16(-7))
        full.set("i32", .int32(-70)); full.set("i64", .int64(-700)); full.set("u8", .uint8(1))
        full.set("flag", .bool(true))
        full.set("tokenizer.ggml.tokens", .array(.string(["<unk>", "<s>", "</s>", "\u{2581}a", "b"])))
        full.set("tokenizer.ggml.scores", .array(.float32([0, -1, -2, -3.5, 4])))
        full.set("tokenizer.ggml.token_type", .array(.int32([2, 3, 3, 1, 1])))
        full.set("bools", .array(.bool([true, false])))
        full.set("nested", .array(.array([.uint8([1, 2]), .string(["x"]), .array([.float64([0.5])])])))
        let specs: [(String, DType, [Int])] = [
            ("f32", .f32, [4, 2]), ("f16", .f16, [8]), ("bf16", .bf16, [2, 2, 2]), ("q4_0", .q4_0, [32, 2]),
            ("q4_1", .q4_1, [32]), ("q5_0", .q5_0, [64]), ("q5_1", .q5_1, [32]), ("q8_0", .q8_0, [32, 1, 2]),
            ("q2_K", .q2_K, [256]), ("q3_K", .q3_K, [256]), ("q4_K", .q4_K, [256]), ("q5_K", .q5_K, [256]),
            ("q6_K", .q6_K, [256, 1, 1, 1]), ("i32", .i32, [3]), ("empty", .f32, [0, 3]), ("scalar", .f32, []),
        ]
        for (name, dtype, ne) in specs { try full.addTensor(name, dtype: dtype, ne: ne, bytes: sane(dtype, ne)) }
        seeds.append(try full.serialized())

        for alignment in [1, 8, 64] {
            var w = GGUFWriter(alignment: alignment)
            w.set("general.architecture", .string("gemma3"))
            try w.addTensor("token_embd.weight", dtype: .q8_0, ne: [32, 3], bytes: random(3 * 34))
            try w.addTensor("blk.0.attn_norm.weight", dtype: .f32, ne: [5], bytes: sane(.f32, [5]))
            try w.addTensor("blk.0.ffn_down.weight", dtype: .q6_K, ne: [256], bytes: random(210))
            seeds.append(try w.serialized())
        }
        var bare = GGUFWriter()
        bare.set("k", .string("v"))
        seeds.append(try bare.serialized())
        var v2 = try GGUFWriter().serialized()
        v2[4] = 2
        seeds.append(v2)

        for name in ["metadata.gguf", "aligned64.gguf"] {
            if let data = FileManager.default.contents(atPath: "Tests/Fixtures/gguf/" + name) { seeds.append([UInt8](data)) }
        }
        return seeds
    }

    /// Parses `input`; if it is accepted, reads every tensor (zero-copy and dequantized), prints
    /// every value, and checks that the writer's canonical form of the file parses back to itself.
    static func run(_ input: [UInt8], iteration: Int) throws {
        let file = try GGUFFile(bytes: input, name: "fuzz.gguf")
        do {
            try exercise(file, input, iteration: iteration)
        } catch let error as FuseIOError {
            throw InvariantViolation(description: "the file was accepted, then: \(error)")
        }
    }

    static func exercise(_ file: GGUFFile, _ input: [UInt8], iteration: Int) throws {
        var sink = 0
        for key in file.keys {
            guard let value = file.metadata[key] else { throw InvariantViolation(description: "key \(key) listed but missing") }
            sink &+= value.description.utf8.count &+ (value.int ?? 0) &+ (value.stringArray?.count ?? 0) &+ (value.intArray?.count ?? 0)
        }
        for info in file.tensors {
            guard info.byteOffset >= file.dataOffset, info.byteOffset + info.byteCount <= file.fileSize else {
                throw InvariantViolation(description: "tensor \(info.name) lies outside the file")
            }
            let tensor = try file.tensor(named: info.name)
            guard tensor.byteCount == info.byteCount, tensor.shape == info.shape else {
                throw InvariantViolation(description: "tensor \(info.name): view disagrees with its info")
            }
            do {
                let values = try file.floats(named: info.name)
                sink &+= values.count
            } catch let error as FuseIOError {
                guard info.dtype == .q8_K else { throw InvariantViolation(description: "floats(\(info.name)) threw \(error)") }
            }
        }
        fuzzSink &+= sink

        // Canonical form: the writer's layout of what was read must parse to the same bytes again.
        var writer = GGUFWriter(alignment: file.alignment)
        writer.version = file.version
        for key in file.keys { if let value = file.metadata[key] { writer.set(key, value) } }
        for info in file.tensors { try writer.addTensor(info.name, dtype: info.dtype, ne: info.ne, bytes: file.bytes(of: info)) }
        let canonical = try writer.serialized()
        let reread = try GGUFFile(bytes: canonical, name: "canonical.gguf")
        var again = GGUFWriter(alignment: reread.alignment)
        again.version = reread.version
        for key in reread.keys { if let value = reread.metadata[key] { again.set(key, value) } }
        for info in reread.tensors { try again.addTensor(info.name, dtype: info.dtype, ne: info.ne, bytes: reread.bytes(of: info)) }
        guard try again.serialized() == canonical else {
            throw InvariantViolation(description: "writer -> reader -> writer changed the file")
        }

        // Now and then go through a real file and the memory map.
        if iteration % 512 == 0 {
            let path = NSTemporaryDirectory() + "fuzz-formats-\(getpid()).gguf"
            _ = FileManager.default.createFile(atPath: path, contents: Data(input))
            defer { try? FileManager.default.removeItem(atPath: path) }
            let mapped = try GGUFFile(path: path)
            guard mapped.tensors == file.tensors, mapped.keys == file.keys else {
                throw InvariantViolation(description: "the mapped file parses differently from the same bytes in memory")
            }
        }
    }
}
