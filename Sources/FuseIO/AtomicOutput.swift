import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// An output folder that appears whole or not at all. Work goes into a temporary sibling
/// (`.NAME.tmp-PID`); `commit()` renames it into place (replacing an existing folder only when
/// `force` was given). If the process fails first, `abandon()` — or deinit — removes the sibling.
public final class AtomicOutputDirectory {
    public let finalPath: String
    public let tempPath: String
    private let force: Bool
    private var done = false

    public init(finalPath: String, force: Bool) throws {
        let url = URL(fileURLWithPath: finalPath).standardizedFileURL
        self.finalPath = url.path
        self.force = force
        let fm = FileManager.default
        if fm.fileExists(atPath: self.finalPath), !force { throw FuseIOError.outputExists(path: self.finalPath) }
        let parent = url.deletingLastPathComponent().path
        if !fm.fileExists(atPath: parent) {
            do { try fm.createDirectory(atPath: parent, withIntermediateDirectories: true) } catch {
                throw FuseIOError.writeFailed(path: parent, reason: "cannot create the parent folder: \(error.localizedDescription)")
            }
        }
        tempPath = parent + "/." + url.lastPathComponent + ".tmp-\(getpid())"
        try? fm.removeItem(atPath: tempPath)
        do { try fm.createDirectory(atPath: tempPath, withIntermediateDirectories: false) } catch {
            throw FuseIOError.writeFailed(path: tempPath, reason: "cannot create the temporary folder: \(error.localizedDescription)")
        }
    }

    deinit { if !done { abandon() } }

    /// Moves the finished folder into place.
    public func commit() throws {
        let fm = FileManager.default
        if fm.fileExists(atPath: finalPath) {
            guard force else { abandon(); throw FuseIOError.outputExists(path: finalPath) }
            let old = tempPath + ".old"
            guard rename(finalPath, old) == 0 else {
                throw FuseIOError.writeFailed(path: finalPath, reason: "cannot move the existing folder aside: \(String(cString: strerror(errno)))")
            }
            guard rename(tempPath, finalPath) == 0 else {
                let reason = String(cString: strerror(errno))
                _ = rename(old, finalPath)
                throw FuseIOError.writeFailed(path: finalPath, reason: reason)
            }
            try? fm.removeItem(atPath: old)
        } else {
            guard rename(tempPath, finalPath) == 0 else {
                throw FuseIOError.writeFailed(path: finalPath, reason: String(cString: strerror(errno)))
            }
        }
        done = true
    }

    /// Removes the temporary folder and everything in it.
    public func abandon() {
        try? FileManager.default.removeItem(atPath: tempPath)
        done = true
    }
}
