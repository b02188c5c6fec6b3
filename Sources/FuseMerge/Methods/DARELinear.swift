/// DARE without consensus: Bernoulli(density) masks, L1 rescale, weighted sum.
/// https://arxiv.org/abs/2311.03099
extension TaskArithmeticFamily {
    public static let dareLinear = TaskArithmeticFamily(
        name: "dare_linear", prettyName: "Linear DARE", referenceURL: "https://arxiv.org/abs/2311.03099",
        sparsifier: .random, signConsensus: false, defaultNormalize: false, defaultRescale: true)
}
