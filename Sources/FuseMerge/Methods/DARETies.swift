/// DARE with TIES sign consensus: Bernoulli(density) masks, L1 rescale, sign election. Not normalized by default: agreeing deltas add.
/// https://arxiv.org/abs/2311.03099
extension TaskArithmeticFamily {
    public static let dareTies = TaskArithmeticFamily(
        name: "dare_ties", prettyName: "DARE TIES", referenceURL: "https://arxiv.org/abs/2311.03099",
        sparsifier: .random, signConsensus: true, defaultNormalize: false, defaultRescale: true)
}
