import COpenBLAS
import CFuseKernels

/// The BLAS/LAPACK bridge. Matrices are row-major Float32 unless a function says otherwise.
public enum BLAS {
    /// C = alpha · op(A) · op(B) + beta · C, row-major; op(A) is M×K, op(B) is K×N.
    public static func sgemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
                             alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                             b: UnsafePointer<Float>, ldb: Int,
                             beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb), beta, c, blasint(ldc))
    }

    /// The slow reference kept beside sgemm (STYLE.md: keep the naive loop), accumulating in f64.
    public static func sgemmReference(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
                                      alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                                      b: UnsafePointer<Float>, ldb: Int,
                                      beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        for i in 0..<m {
            for j in 0..<n {
                var s = 0.0
                for p in 0..<k {
                    let av = transA ? a[p * lda + i] : a[i * lda + p]
                    let bv = transB ? b[j * ldb + p] : b[p * ldb + j]
                    s += Double(av) * Double(bv)
                }
                let prior = beta == 0 ? 0 : beta * c[i * ldc + j]
                c[i * ldc + j] = alpha * Float(s) + prior
            }
        }
    }

    /// Σ x·y accumulated in f64.
    public static func dot(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, count: Int) -> Double {
        fk_dot_f32(x, y, count)
    }

    /// Thin SVD of a row-major m×n matrix: A = U · diag(S) · Vt, U m×r, Vt r×n, r = min(m, n).
    /// Uses LAPACK sgesdd on the transposed view (row-major A is column-major Aᵀ).
    public static func svd(_ matrix: [Float], rows m: Int, cols n: Int) throws -> (u: [Float], s: [Float], vt: [Float]) {
        let r = min(m, n)
        // Column-major Aᵀ (n×m) = row-major A. SVD of Aᵀ = V S Uᵀ, so LAPACK's U is our V and its Vt our Uᵀ.
        var a = matrix
        var s = [Float](repeating: 0, count: r)
        var uT = [Float](repeating: 0, count: n * r)     // column-major n×r = LAPACK "U" of Aᵀ
        var vT = [Float](repeating: 0, count: r * m)     // column-major r×m = LAPACK "Vt" of Aᵀ
        var jobz = Int8(UInt8(ascii: "S"))
        var rows = Int32(n), cols = Int32(m), lda = Int32(n), ldu = Int32(n), ldvt = Int32(r)
        var info: Int32 = 0, lwork: Int32 = -1
        var query: Float = 0, dummy: Float = 0
        var iwork = [Int32](repeating: 0, count: 8 * r)
        sgesdd_(&jobz, &rows, &cols, &a, &lda, &s, &uT, &ldu, &dummy, &ldvt, &query, &lwork, &iwork, &info)
        guard info == 0 else { throw TensorError.lapack(routine: "sgesdd", info: Int(info)) }
        lwork = Int32(query)
        var work = [Float](repeating: 0, count: max(1, Int(lwork)))
        sgesdd_(&jobz, &rows, &cols, &a, &lda, &s, &uT, &ldu, &vT, &ldvt, &work, &lwork, &iwork, &info)
        guard info == 0 else { throw TensorError.lapack(routine: "sgesdd", info: Int(info)) }
        // Column-major r×m "Vt" of Aᵀ is row-major m×r: that is U of A. Column-major n×r "U" of Aᵀ is
        // row-major r×n: that is Vt of A.
        return (u: vT, s: s, vt: uT)
    }

    /// The OpenBLAS kernel family in use (for benchmark headers).
    public static var coreName: String {
        guard let p = openblas_get_corename() else { return "unknown" }
        return String(cString: p)
    }
}
