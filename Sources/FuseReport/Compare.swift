import CFuseKernels
import Foundation
import FuseIO
import FuseTensor

/// Tensor-by-tensor difference of two models with the same tensor names (`fusekit report --compare A B`).
public struct ModelComparison: Sendable {
    public struct Row: Sendable {
        public var name: String
        public var layer: Int?
        public var elements: Int
        /// ‖a − b‖ / ‖a‖ (0 when both are zero).
        public var relativeDifference: Double
        public var cosine: Double
        public var maxAbsDifference: Double
        /// Share of elements with exactly equal values.
        public var equalFraction: Double
        public var normA: Double
        public var normB: Double
    }

    public var a: String
    public var b: String
    public var rows: [Row]
    public var onlyInA: [String]
    public var onlyInB: [String]
    /// Tensors with the same name and different shapes: name, shape in A, shape in B.
    public var shapeMismatches: [(String, [Int], [Int])]
    public var seconds: Double

    public static func compare(_ pathA: String, _ pathB: String, progress: ((Int, Int, String) -> Void)? = nil) throws -> ModelComparison {
        let start = Date()
        let a = try WeightStore(path: pathA), b = try WeightStore(path: pathB)
        let namesB = Set(b.names)
        var rows: [Row] = [], mismatches: [(String, [Int], [Int])] = []
        let reader = RowReader()
        for (i, name) in a.names.enumerated() {
            progress?(i, a.names.count, name)
            guard namesB.contains(name), let ia = a.info(name), let ib = b.info(name) else { continue }
            guard ia.shape == ib.shape else { mismatches.append((name, ia.shape, ib.shape)); continue }
            let ra = try reader.rows(a, name), rb = try reader.rows(b, name)
            rows.append(try measure(name: name, ra, rb))
        }
        progress?(a.names.count, a.names.count, "")
        let namesA = Set(a.names)
        return ModelComparison(a: pathA, b: pathB, rows: rows, onlyInA: a.names.filter { !namesB.contains($0) },
                               onlyInB: b.names.filter { !namesA.contains($0) }, shapeMismatches: mismatches,
                               seconds: Date().timeIntervalSince(start))
    }

    static func measure(name: String, _ ra: any RowSource, _ rb: any RowSource) throws -> Row {
        let rows = ra.rowCount, perRow = ra.rowElements
        let rowsPerChunk = max(1, (1 << 18) / max(1, perRow))
        let chunks = (rows + rowsPerChunk - 1) / rowsPerChunk
        // aa, bb, ab, dd, max, equal
        var partial = [(Double, Double, Double, Double, Double, Int)](repeating: (0, 0, 0, 0, 0, 0), count: chunks)
        try partial.withUnsafeMutableBufferPointer { slots in
            let slots = slots
            try parallelForThrowing(count: rows, chunkSize: rowsPerChunk) { _, range in
                let n = range.count * perRow
                let x = UnsafeMutablePointer<Float>.allocate(capacity: 2 * n)
                defer { x.deallocate() }
                try ra.readRows(range, into: x)
                try rb.readRows(range, into: x + n)
                let y = x + n
                let aa = fk_sumsq_f32(x, n), bb = fk_sumsq_f32(y, n), ab = fk_dot_f32(x, y, n)
                var dd = 0.0, mx = 0.0, eq = 0
                for j in 0..<n {
                    let d = Double(x[j]) - Double(y[j])
                    dd += d * d
                    mx = max(mx, abs(d))
                    if x[j] == y[j] { eq += 1 }
                }
                slots[range.lowerBound / rowsPerChunk] = (aa, bb, ab, dd, mx, eq)
            }
        }
        var t = (0.0, 0.0, 0.0, 0.0, 0.0, 0)
        for p in partial { t = (t.0 + p.0, t.1 + p.1, t.2 + p.2, t.3 + p.3, max(t.4, p.4), t.5 + p.5) }
        let elements = rows * perRow
        return Row(name: name, layer: layerIndex(of: name), elements: elements,
                   relativeDifference: t.0 > 0 ? (t.3 / t.0).squareRoot() : (t.3 > 0 ? .infinity : 0),
                   cosine: cosine(t.2, t.0, t.1), maxAbsDifference: t.4,
                   equalFraction: elements > 0 ? Double(t.5) / Double(elements) : 1,
                   normA: t.0.squareRoot(), normB: t.1.squareRoot())
    }
}
