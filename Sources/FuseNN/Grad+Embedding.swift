// Embedding lookups for training: token embeddings (Gemma scales them by √C) and GPT-2's learned
// positions. Backward scatter-adds into the table rows the batch used.
import Foundation
import FuseTensor

extension Tape {
    /// y `[N, C]` = table[ids] · scale (Gemma scales by √C; GPT-2's learned positions use this too).
    public func embedding(_ ids: [Int], table: Variable, scale: Float = 1, name: String) throws -> Variable {
        let (v, c) = (table.rows, table.cols)
        for id in ids where id < 0 || id >= v {
            throw NNError.invalidArgument("id \(id) is outside '\(name)' (\(v) rows); token and position ids must lie in [0, \(v))")
        }
        let y = Variable(rows: ids.count, cols: c, requiresGrad: needsGrad(table))
        for (i, id) in ids.enumerated() {
            let src = table.data + id * c, dst = y.data + i * c
            if scale == 1 { dst.update(from: src, count: c) } else { for j in 0..<c { dst[j] = src[j] * scale } }
        }
        if y.requiresGrad, table.requiresGrad {
            record(y) { guard let gy = y.grad, let gt = table.grad else { return }
                embeddingBackward(gy, ids: ids, dim: c, scale: scale, dTable: gt)
                withExtendedLifetime(table) {}
            }
        }
        return y
    }
}

/// dTable[ids[i]] += scale · dy[i], split over column blocks so rows repeat in order on one thread.
public func embeddingBackward(_ dy: UnsafePointer<Float>, ids: [Int], dim c: Int, scale: Float, dTable: UnsafeMutablePointer<Float>) {
    ids.withUnsafeBufferPointer { idp in
        parallelFor(count: c, chunkSize: max(16, (c + 3) / 4)) { _, cols in
            for (i, id) in idp.enumerated() {
                let src = dy + i * c, dst = dTable + id * c
                for j in cols { dst[j] += src[j] * scale }
            }
        }
    }
}
