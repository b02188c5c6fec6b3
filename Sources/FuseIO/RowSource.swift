import FuseTensor

/// A tensor that can be read as Float32 a block of rows at a time, so converters and merges stream
/// large tensors through small buffers. Row = the first dimension; a 0-D or 1-D tensor is one row.
public protocol RowSource: Sendable {
    var info: TensorInfo { get }
    /// Writes rows `rows` (as Float32, `rowElements` each) into `dst`.
    func readRows(_ rows: Range<Int>, into dst: UnsafeMutablePointer<Float>) throws
}

extension RowSource {
    public var rowCount: Int { info.shape.count >= 2 ? info.shape[0] : 1 }
    public var rowElements: Int { rowCount == 0 ? 0 : info.elementCount / rowCount }
}

/// Rows of a stored tensor (any element-wise or block type whose rows are whole blocks).
public struct StoredRows: RowSource, @unchecked Sendable {
    public let info: TensorInfo
    let tensor: Tensor

    public init(name: String, tensor: Tensor) {
        self.info = TensorInfo(name: name, dtype: tensor.dtype, shape: tensor.shape)
        self.tensor = tensor
    }

    public func readRows(_ rows: Range<Int>, into dst: UnsafeMutablePointer<Float>) throws {
        let n = rowElements
        guard let rowBytes = info.dtype.byteCount(elements: n) else {
            throw TensorError.invalidShape(info.shape)
        }
        try Convert.toFloat32(info.dtype, from: UnsafeRawPointer(tensor.buffer.base) + rows.lowerBound * rowBytes,
                              to: dst, count: rows.count * n)
    }
}

extension WeightStore {
    /// The tensor as a row source (GGUF tensors come with their HF-layout transforms applied).
    public func rows(_ name: String) throws -> any RowSource {
        if let g = ggufRows(name) { return g }
        return StoredRows(name: name, tensor: try tensor(name))
    }
}

/// Streams `source` into `writer` as `dtype`: chunks of rows are converted on `Parallel.threads`
/// workers and written in place with pwrite, so reading, conversion and writing overlap.
public func streamTensor(_ source: any RowSource, as dtype: DType, into writer: ShardedSafetensorsWriter,
                         chunkBytes: Int = 4 << 20) throws {
    let info = source.info
    let rows = source.rowCount, perRow = source.rowElements
    guard let outRowBytes = dtype.byteCount(elements: perRow) else {
        throw TensorError.unsupportedConversion(from: info.dtype, to: dtype)
    }
    let rowsPerChunk = max(1, chunkBytes / max(1, perRow * 4))
    try parallelForThrowing(count: rows, chunkSize: rowsPerChunk) { _, range in
        let n = range.count * perRow
        let f32 = UnsafeMutablePointer<Float>.allocate(capacity: max(n, 1))
        defer { f32.deallocate() }
        try source.readRows(range, into: f32)
        if dtype == .f32 {
            try writer.writePart(info.name, bytes: UnsafeRawBufferPointer(start: f32, count: n * 4), at: range.lowerBound * outRowBytes)
        } else {
            let out = UnsafeMutableRawPointer.allocate(byteCount: max(range.count * outRowBytes, 1), alignment: 64)
            defer { out.deallocate() }
            try Convert.fromFloat32(dtype, from: f32, to: out, count: n)
            try writer.writePart(info.name, bytes: UnsafeRawBufferPointer(start: out, count: range.count * outRowBytes), at: range.lowerBound * outRowBytes)
        }
    }
    writer.markWritten(info.name)
}
