// Tensor data of a parsed GGUF file: zero-copy views of the map, and dequantization to Float32.
import FuseTensor

extension GGUFFile {
    /// Elements per parallel dequantization chunk (a multiple of every block size): large enough
    /// that dispatch costs nothing, small enough that both cores get work on a 576-wide matrix.
    static let dequantChunkElements = 1 << 16

    /// The info of tensor `name`, or `.missingTensor`.
    public func requireInfo(_ name: String) throws -> GGUFTensorInfo {
        guard let info = info(named: name) else { throw FuseIOError.missingTensor(path: path, tensor: name) }
        return info
    }

    /// The stored bytes of a tensor, valid while this file is alive.
    public func bytes(of info: GGUFTensorInfo) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: info.byteCount == 0 ? nil : base.map { $0 + info.byteOffset }, count: info.byteCount)
    }

    /// Tensor `name` in its stored dtype (possibly quantized) and HF shape (`ne` reversed). The buffer
    /// borrows the memory map, which stays alive as long as the tensor does. When the file's
    /// alignment is smaller than the element size (alignment 1 or 2), the bytes are copied instead,
    /// so a tensor's elements are always naturally aligned.
    public func tensor(named name: String) throws -> Tensor {
        let info = try requireInfo(name)
        let buffer: Buffer
        if let start = bytes(of: info).baseAddress, !isNaturallyAligned(start, info.dtype) {
            buffer = Buffer(byteCount: info.byteCount)
            buffer.base.copyMemory(from: start, byteCount: info.byteCount)
        } else if let start = bytes(of: info).baseAddress {
            buffer = Buffer(borrowing: start, byteCount: info.byteCount, owner: owner)
        } else {
            buffer = Buffer(byteCount: 0)
        }
        do {
            return try Tensor(dtype: info.dtype, shape: info.shape, buffer: buffer)
        } catch {
            throw FuseIOError.badTensor(path: path, tensor: name, what: "\(error)")
        }
    }

    /// Tensor `name` as Float32 (dequantized or widened), in row-major HF order.
    public func floats(named name: String) throws -> [Float] {
        let info = try requireInfo(name)
        var out = [Float](repeating: 0, count: info.elementCount)
        try out.withUnsafeMutableBufferPointer { try floats(of: info, into: $0) }
        return out
    }

    /// Dequantizes or widens `info`'s data into `destination`, which holds exactly
    /// `info.elementCount` floats (a reused buffer: DESIGN.md's tensor-at-a-time data flow).
    /// Quantized types run in parallel chunks of whole blocks; the result does not depend on the
    /// thread count.
    public func floats(of info: GGUFTensorInfo, into destination: UnsafeMutableBufferPointer<Float>) throws {
        guard destination.count == info.elementCount else {
            throw FuseIOError.badTensor(path: path, tensor: info.name, what: "destination holds \(destination.count) floats, the tensor has \(info.elementCount) elements")
        }
        guard let dst = destination.baseAddress, let src = bytes(of: info).baseAddress else { return }
        let dtype = info.dtype
        if dtype.isQuantized {
            guard let dequantize = Dequantizers.table[dtype] else {
                throw FuseIOError.unknownDType(path: path, tensor: info.name, dtype: "\(dtype.rawValue.uppercased()) (FuseKit cannot dequantize this type)")
            }
            let blockElements = dtype.blockElements, blockBytes = dtype.blockBytes
            let blocks = info.elementCount / blockElements
            parallelFor(count: blocks, chunkSize: max(1, Self.dequantChunkElements / blockElements)) { _, range in
                dequantize(src + range.lowerBound * blockBytes, dst + range.lowerBound * blockElements, range.count * blockElements)
            }
            return
        }
        do {
            if isNaturallyAligned(src, dtype) {
                try Convert.toFloat32(dtype, from: src, to: dst, count: info.elementCount)
            } else {
                let copy = Buffer(byteCount: info.byteCount)
                copy.base.copyMemory(from: src, byteCount: info.byteCount)
                try Convert.toFloat32(dtype, from: UnsafeRawPointer(copy.base), to: dst, count: info.elementCount)
            }
        } catch {
            throw FuseIOError.unknownDType(path: path, tensor: info.name, dtype: "\(dtype.rawValue) (\(error))")
        }
    }

    private func isNaturallyAligned(_ p: UnsafeRawPointer, _ dtype: DType) -> Bool {
        dtype.isQuantized || Int(bitPattern: p) % dtype.blockBytes == 0
    }
}
