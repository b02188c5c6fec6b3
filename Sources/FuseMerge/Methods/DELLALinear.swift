/// DELLA MagPrune without consensus or normalization.
/// https://arxiv.org/abs/2406.11617
extension TaskArithmeticFamily {
    public static let dellaLinear = TaskArithmeticFamily(
        name: "della_linear", prettyName: "Linear DELLA", referenceURL: "https://arxiv.org/abs/2406.11617",
        sparsifier: .dellaMagprune, signConsensus: false, defaultNormalize: false, defaultRescale: true)
}
