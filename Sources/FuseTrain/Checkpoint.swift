import Foundation
import FuseIO
import FuseNN
import FuseTensor

// MARK: - Checkpoint layout
//
// OUT_DIR/checkpoints/step-00000120/       one folder per saved step, renamed into place when whole
//   state.safetensors                      f32 tensors, every one exactly as in memory:
//       param.<name>                         the trainable parameter's value (HF / PEFT-less name)
//       adam.m.<name>                        AdamW's first moment (exp_avg)
//       adam.v.<name>                        AdamW's second moment (exp_avg_sq)
//   trainer.json                           {"format": "fusekit-train-checkpoint", "version": 1,
//                                           "step": optimiser steps done, "cursor": micro-batches consumed,
//                                           "adam_step", "rng": {"seed", "shuffle_stream", "dropout_stream"},
//                                           "data": {"sequences", "fingerprint"}, "settings": {...}}
//
// The random state is a function of the seed and the counters: the data order of epoch e is drawn
// from (seed, "fusekit.train.shuffle", e) and LoRA dropout from (seed, module, micro-batch index), so
// (seed, cursor) restores both exactly. A folder is written as `.step-N.tmp-PID` and renamed; older
// checkpoints are deleted only after the new one is in place, so a kill -9 at any moment leaves at
// least one whole checkpoint.

public struct CheckpointState {
    public var step: Int
    public var cursor: Int
    public var parameters: [String: [Float]]
    public var firstMoments: [String: [Float]]
    public var secondMoments: [String: [Float]]
    public var settings: JSON
    public var dataFingerprint: JSON
}

enum Checkpoints {
    static let format = "fusekit-train-checkpoint"
    static let version = 1

    static func folderName(step: Int) -> String { String(format: "step-%08d", step) }

    /// Writes a checkpoint atomically, then deletes all but the newest `keep`.
    static func save(directory: String, step: Int, cursor: Int, parameters: [Parameter], optimizer: AdamW,
                     seed: UInt64, settings: JSON, dataFingerprint: JSON, keep: Int) throws {
        let fm = FileManager.default
        do { try fm.createDirectory(atPath: directory, withIntermediateDirectories: true) } catch {
            throw FuseTrainError.badCheckpoint(path: directory, reason: "cannot create the checkpoints folder: \(error.localizedDescription)")
        }
        let name = folderName(step: step)
        let final = directory + "/" + name
        let temp = directory + "/.\(name).tmp-\(getpid())"
        try? fm.removeItem(atPath: temp)
        do { try fm.createDirectory(atPath: temp, withIntermediateDirectories: false) } catch {
            throw FuseTrainError.badCheckpoint(path: temp, reason: "cannot create: \(error.localizedDescription)")
        }
        do {
            var tensors: [(String, Tensor)] = []
            for p in parameters {
                tensors.append(("param." + p.name, try Tensor(floats: p.value, shape: p.shape)))
                let zeros = [Float](repeating: 0, count: p.count)
                tensors.append(("adam.m." + p.name, try Tensor(floats: optimizer.exponentialAverage[p.name] ?? zeros, shape: p.shape)))
                tensors.append(("adam.v." + p.name, try Tensor(floats: optimizer.exponentialAverageSquared[p.name] ?? zeros, shape: p.shape)))
            }
            try writeSafetensors(path: temp + "/state.safetensors", tensors: tensors, metadata: ["format": format])
            let meta: JSON = .object([
                ("format", .string(format)), ("version", .int(version)),
                ("step", .int(step)), ("cursor", .int(cursor)), ("adam_step", .int(optimizer.step)),
                ("rng", .object([("seed", .string(String(seed))),
                                 ("shuffle_stream", .string("(seed, fusekit.train.shuffle, epoch = cursor·batch / sequences)")),
                                 ("dropout_stream", .string("(seed, module, micro-batch index)"))])),
                ("data", dataFingerprint),
                ("settings", settings),
            ])
            try writeFileAtomically(path: temp + "/trainer.json", contents: meta.serialized(indent: 2) + "\n")
            if fm.fileExists(atPath: final) { try? fm.removeItem(atPath: final) }
            guard rename(temp, final) == 0 else {
                throw FuseTrainError.badCheckpoint(path: final, reason: "cannot rename into place: \(String(cString: strerror(errno)))")
            }
        } catch {
            try? fm.removeItem(atPath: temp)
            throw error
        }
        let steps = completeSteps(directory: directory)
        for old in steps.dropLast(max(1, keep)) { try? fm.removeItem(atPath: directory + "/" + folderName(step: old)) }
    }

    /// Steps of the whole checkpoints in `directory`, ascending (temporary folders are ignored).
    static func completeSteps(directory: String) -> [Int] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.compactMap { name -> Int? in
            guard name.hasPrefix("step-"), let n = Int(name.dropFirst(5)),
                  FileManager.default.fileExists(atPath: directory + "/" + name + "/trainer.json") else { return nil }
            return n
        }.sorted()
    }

    /// Removes temporary folders a killed run left behind.
    static func removeLeftovers(directory: String) {
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] where name.hasPrefix(".step-") {
            try? FileManager.default.removeItem(atPath: directory + "/" + name)
        }
    }

    /// Loads the newest whole checkpoint, or nil when there is none.
    static func loadLatest(directory: String) throws -> CheckpointState? {
        guard let step = completeSteps(directory: directory).last else { return nil }
        let folder = directory + "/" + folderName(step: step)
        let meta: JSON
        do { meta = try JSON.parse(try String(contentsOfFile: folder + "/trainer.json", encoding: .utf8)) } catch {
            throw FuseTrainError.badCheckpoint(path: folder + "/trainer.json", reason: "unreadable (\(error))")
        }
        guard meta["format"]?.string == format, meta["version"]?.int == version else {
            throw FuseTrainError.badCheckpoint(path: folder + "/trainer.json", reason: "not a \(format) version \(version) file")
        }
        guard let savedStep = meta["step"]?.int, let cursor = meta["cursor"]?.int, savedStep == step else {
            throw FuseTrainError.badCheckpoint(path: folder + "/trainer.json", reason: "'step' or 'cursor' missing or not \(step)")
        }
        let file: SafetensorsFile
        do { file = try SafetensorsFile(path: folder + "/state.safetensors") } catch {
            throw FuseTrainError.badCheckpoint(path: folder + "/state.safetensors", reason: "\(error)")
        }
        var parameters: [String: [Float]] = [:], first: [String: [Float]] = [:], second: [String: [Float]] = [:]
        for info in file.tensors {
            guard info.dtype == .f32 else {
                throw FuseTrainError.badCheckpoint(path: file.path, reason: "tensor \(info.name) is \(info.dtype.rawValue), expected f32")
            }
            let values = try file.tensor(info.name).floats()
            if info.name.hasPrefix("param.") { parameters[String(info.name.dropFirst(6))] = values }
            else if info.name.hasPrefix("adam.m.") { first[String(info.name.dropFirst(7))] = values }
            else if info.name.hasPrefix("adam.v.") { second[String(info.name.dropFirst(7))] = values }
            else { throw FuseTrainError.badCheckpoint(path: file.path, reason: "unexpected tensor \(info.name)") }
        }
        return CheckpointState(step: step, cursor: cursor, parameters: parameters, firstMoments: first, secondMoments: second,
                               settings: meta["settings"] ?? .null, dataFingerprint: meta["data"] ?? .null)
    }
}
