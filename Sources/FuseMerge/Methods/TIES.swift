/// TIES: trim each τᵢ to its top-density magnitudes, elect signs on the weighted sum, disjoint weighted mean.
/// https://arxiv.org/abs/2306.01708
extension TaskArithmeticFamily {
    public static let ties = TaskArithmeticFamily(
        name: "ties", prettyName: "TIES", referenceURL: "https://arxiv.org/abs/2306.01708",
        sparsifier: .magnitude, signConsensus: true, defaultNormalize: true, defaultRescale: false)
}
