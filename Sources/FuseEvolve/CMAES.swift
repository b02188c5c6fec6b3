import Foundation
import FuseTensor

/// CMA-ES, Hansen's (μ/μ_w, λ) evolution strategy with cumulative step-size adaptation, rank-one and
/// rank-μ covariance updates, minimising. It follows `cma.purecma` (cma 4.5.0,
/// `cma/more_algorithms/purecma.py`, Hansen's reference implementation) line by line: the same default
/// strategy parameters, the same `hsig` stall rule, the same σ update
/// σ ← σ·exp(min(1, c_σ/d_σ·(‖p_σ‖²/N − 1)/2)), and the same lazy eigendecomposition (C is decomposed in
/// `ask` only after `lazyGapEvaluations` more evaluations), so its mean, σ and C after each `tell`
/// match purecma's to rounding (Tests/FuseEvolveTests/CMAESTests.swift, fixture from
/// Tools/fixtures/evolve_fixtures.py). Sampling draws from a `SeededRNG` instead of `random`.
/// All state is a plain Codable value, so a run resumes exactly.
public struct CMAES: Codable, Equatable, Sendable {
    // MARK: strategy parameters (purecma `CMAESParameters`)
    public let dimension: Int
    public let lambda: Int
    public let mu: Int
    public let weights: [Double]
    public let muEff: Double
    public let cc: Double, cs: Double, c1: Double, cmu: Double, damps: Double
    public let lazyGapEvaluations: Double

    // MARK: dynamic state
    public private(set) var mean: [Double]
    public private(set) var sigma: Double
    public private(set) var pc: [Double]
    public private(set) var ps: [Double]
    /// Covariance matrix, row-major N×N.
    public private(set) var c: [Double]
    /// Eigenbasis (column k is eigenvector k), eigenvalues and C^(-1/2), as of `updatedEvaluation`.
    public private(set) var eigenbasis: [Double]
    public private(set) var eigenvalues: [Double]
    public private(set) var invSqrt: [Double]
    public private(set) var updatedEvaluation: Int
    public private(set) var evaluations: Int

    /// purecma's default population size, 4 + ⌊3 ln N⌋.
    public static func defaultPopulation(dimension n: Int) -> Int { 4 + Int(3 * log(Double(n))) }

    public init(mean: [Double], sigma: Double, population: Int? = nil) throws {
        let n = mean.count
        guard n >= 1 else { throw EvolveError.invalidArgument("CMA-ES needs at least one dimension") }
        guard sigma > 0, sigma.isFinite else { throw EvolveError.invalidArgument("CMA-ES sigma must be positive, got \(sigma)") }
        let lam = population ?? Self.defaultPopulation(dimension: n)
        guard lam >= 2 else { throw EvolveError.invalidArgument("CMA-ES population must be at least 2, got \(lam)") }
        let N = Double(n)
        dimension = n
        lambda = lam
        mu = lam / 2
        var w = (0..<lam).map { i in i < lam / 2 ? log(Double(lam) / 2 + 0.5) - log(Double(i + 1)) : 0 }
        let wSum = w[0..<(lam / 2)].reduce(0, +)
        w = w.map { $0 / wSum }
        weights = w
        let mueff = pow(w[0..<(lam / 2)].reduce(0, +), 2) / w[0..<(lam / 2)].reduce(0) { $0 + $1 * $1 }
        muEff = mueff
        cc = (4 + mueff / N) / (N + 4 + 2 * mueff / N)
        cs = (mueff + 2) / (N + mueff + 5)
        c1 = 2 / (pow(N + 1.3, 2) + mueff)
        cmu = min(1 - c1, 2 * (mueff - 2 + 1 / mueff) / (pow(N + 2, 2) + mueff))
        damps = 2 * mueff / Double(lam) + 0.3 + cs
        lazyGapEvaluations = 0.5 * N * Double(lam) / (c1 + cmu) / (N * N)
        self.mean = mean
        self.sigma = sigma
        pc = [Double](repeating: 0, count: n)
        ps = [Double](repeating: 0, count: n)
        c = Self.identity(n)
        eigenbasis = Self.identity(n)
        eigenvalues = [Double](repeating: 1, count: n)
        invSqrt = Self.identity(n)
        updatedEvaluation = 0
        evaluations = 0
    }

    static func identity(_ n: Int) -> [Double] {
        var m = [Double](repeating: 0, count: n * n)
        for i in 0..<n { m[i * n + i] = 1 }
        return m
    }

    /// purecma `DecomposingPositiveMatrix.update_eigensystem`: decompose C when more than
    /// `lazyGapEvaluations` evaluations passed since the last decomposition.
    public mutating func updateEigensystem() throws {
        guard Double(evaluations) > Double(updatedEvaluation) + lazyGapEvaluations else { return }
        let n = dimension
        for i in 0..<n { for j in 0..<i { let v = (c[i * n + j] + c[j * n + i]) / 2; c[i * n + j] = v; c[j * n + i] = v } }
        let (values, vectors) = symmetricEigen(c, n: n)
        guard let smallest = values.min(), smallest > 0 else {
            throw EvolveError.invalidArgument("CMA-ES: the covariance matrix lost positive definiteness after \(evaluations) evaluations (smallest eigenvalue \(values.min() ?? 0)); restart with a smaller sigma")
        }
        eigenvalues = values
        eigenbasis = vectors
        for i in 0..<n {
            for j in 0...i {
                var s = 0.0
                for k in 0..<n { s += vectors[i * n + k] * vectors[j * n + k] / values[k].squareRoot() }
                invSqrt[i * n + j] = s; invSqrt[j * n + i] = s
            }
        }
        updatedEvaluation = evaluations
    }

    /// λ candidates m + σ·B·D·z, z ~ N(0, I) from `rng`.
    public mutating func ask(_ rng: inout SeededRNG) throws -> [[Double]] {
        try updateEigensystem()
        let n = dimension
        return (0..<lambda).map { _ in
            let z = eigenvalues.map { sigma * $0.squareRoot() * rng.nextGaussian() }
            return (0..<n).map { i in mean[i] + (0..<n).reduce(0.0) { $0 + eigenbasis[i * n + $1] * z[$1] } }
        }
    }

    /// Updates mean, paths, C and σ from candidates and their values (lower is better). Ties keep the
    /// candidates' order (Python's stable sort).
    public mutating func tell(_ candidates: [[Double]], _ values: [Double]) throws {
        guard candidates.count == values.count, candidates.count >= mu,
              candidates.allSatisfy({ $0.count == dimension }) else {
            throw EvolveError.invalidArgument("CMA-ES tell: \(candidates.count) candidates of dimension \(dimension) with \(values.count) values expected, at least \(mu)")
        }
        let n = dimension, N = Double(n)
        evaluations += values.count
        let order = values.indices.sorted { values[$0] < values[$1] || (values[$0] == values[$1] && $0 < $1) }
        let sorted = order.map { candidates[$0] }
        let old = mean
        mean = (0..<n).map { i in (0..<mu).reduce(0.0) { $0 + sorted[$1][i] * weights[$1] } }
        let y = (0..<n).map { mean[$0] - old[$0] }
        let z = (0..<n).map { i in (0..<n).reduce(0.0) { $0 + invSqrt[i * n + $1] * y[$1] } }
        let csn = (cs * (2 - cs) * muEff).squareRoot() / sigma
        for i in 0..<n { ps[i] = (1 - cs) * ps[i] + csn * z[i] }
        let ccn = (cc * (2 - cc) * muEff).squareRoot() / sigma
        let psSquared = ps.reduce(0) { $0 + $1 * $1 }
        let hsig: Double = psSquared / N / (1 - pow(1 - cs, 2 * Double(evaluations) / Double(lambda))) < 2 + 4 / (N + 1) ? 1 : 0
        for i in 0..<n { pc[i] = (1 - cc) * pc[i] + ccn * hsig * y[i] }
        let c1a = c1 * (1 - (1 - hsig * hsig) * cc * (2 - cc))
        let scale = 1 - c1a - cmu * weights.reduce(0, +)
        for k in c.indices { c[k] *= scale }
        for i in 0..<n { for j in 0..<n { c[i * n + j] += c1 * pc[i] * pc[j] } }
        for (k, wk) in weights.enumerated() where wk != 0 {
            let dx = (0..<n).map { sorted[k][$0] - old[$0] }
            let f = wk * cmu / (sigma * sigma)
            for i in 0..<n { for j in 0..<n { c[i * n + j] += f * dx[i] * dx[j] } }
        }
        sigma *= exp(min(1, cs / damps * (psSquared / N - 1) / 2))
    }
}

/// Eigenvalues and eigenvectors (column k of the row-major result) of a symmetric matrix by cyclic
/// Jacobi rotations: slow (O(N³) per sweep) but exact to rounding for the few hundred genes a recipe has.
func symmetricEigen(_ matrix: [Double], n: Int) -> ([Double], [Double]) {
    var a = matrix
    var v = CMAES.identity(n)
    for _ in 0..<100 {
        var off = 0.0
        for i in 0..<n { for j in (i + 1)..<max(i + 1, n) { off += a[i * n + j] * a[i * n + j] } }
        if off < 1e-30 { break }
        for p in 0..<n {
            for q in (p + 1)..<max(p + 1, n) {
                let apq = a[p * n + q]
                if abs(apq) < 1e-300 { continue }
                let theta = (a[q * n + q] - a[p * n + p]) / (2 * apq)
                let t = (theta >= 0 ? 1.0 : -1.0) / (abs(theta) + (theta * theta + 1).squareRoot())
                let cosine = 1 / (t * t + 1).squareRoot(), sine = t * cosine
                for k in 0..<n {
                    let akp = a[k * n + p], akq = a[k * n + q]
                    a[k * n + p] = cosine * akp - sine * akq
                    a[k * n + q] = sine * akp + cosine * akq
                }
                for k in 0..<n {
                    let apk = a[p * n + k], aqk = a[q * n + k]
                    a[p * n + k] = cosine * apk - sine * aqk
                    a[q * n + k] = sine * apk + cosine * aqk
                }
                for k in 0..<n {
                    let vkp = v[k * n + p], vkq = v[k * n + q]
                    v[k * n + p] = cosine * vkp - sine * vkq
                    v[k * n + q] = sine * vkp + cosine * vkq
                }
            }
        }
    }
    return ((0..<n).map { a[$0 * n + $0] }, v)
}
