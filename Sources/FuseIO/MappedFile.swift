import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A read-only memory map of a whole file. Tensors borrow slices of it (`Buffer(borrowing:)`), so the
/// map lives while any tensor does. Reads are bounds-checked against the file size and throw
/// `.truncated` naming the path and offset.
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let size: Int
    public let base: UnsafeRawPointer?
    private let inMemory: Bool

    /// A copy of `bytes` standing in for a file named `name` (tests and the fuzzer).
    public init(bytes: [UInt8], name: String) {
        path = name
        size = bytes.count
        inMemory = true
        let p = UnsafeMutableRawPointer.allocate(byteCount: max(bytes.count, 1), alignment: 64)
        bytes.withUnsafeBytes { if let b = $0.baseAddress { p.copyMemory(from: b, byteCount: $0.count) } }
        base = UnsafeRawPointer(p)
    }

    public init(path: String) throws {
        self.path = path
        inMemory = false
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw FuseIOError.cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw FuseIOError.cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw FuseIOError.cannotOpen(path: path, reason: "not a regular file") }
        size = Int(st.st_size)
        if size == 0 { base = nil; return }
        let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let p, p != MAP_FAILED else { throw FuseIOError.cannotOpen(path: path, reason: "mmap failed: \(String(cString: strerror(errno)))") }
        base = UnsafeRawPointer(p)
    }

    deinit {
        guard let base else { return }
        if inMemory { UnsafeMutableRawPointer(mutating: base).deallocate() } else { munmap(UnsafeMutableRawPointer(mutating: base), size) }
    }

    /// Throws unless `[offset, offset + count)` lies inside the file.
    public func check(offset: Int, count: Int, what: @autoclosure () -> String) throws {
        let (end, overflow) = offset.addingReportingOverflow(count)
        guard offset >= 0, count >= 0, !overflow, end <= size else {
            throw FuseIOError.truncated(path: path, what: what(), offset: offset, needed: count, fileSize: size)
        }
    }

    /// Bytes `[offset, offset + count)`, bounds-checked.
    public func bytes(offset: Int, count: Int, what: @autoclosure () -> String) throws -> UnsafeRawBufferPointer {
        try check(offset: offset, count: count, what: what())
        guard let base else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: base + offset, count: count)
    }

    /// Tells the kernel the range will be read soon (readahead) or is no longer needed.
    public func advise(offset: Int, count: Int, willNeed: Bool) {
        guard let base, count > 0, !inMemory else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = offset / page * page
        let len = min(size, offset + count) - start
        guard len > 0 else { return }
        madvise(UnsafeMutableRawPointer(mutating: base + start), len, willNeed ? Int32(MADV_WILLNEED) : Int32(MADV_DONTNEED))
    }
}
