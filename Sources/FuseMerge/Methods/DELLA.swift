/// DELLA: MagPrune (rank-dependent keep probability per row), L1 rescale, sign consensus, normalized.
/// https://arxiv.org/abs/2406.11617
extension TaskArithmeticFamily {
    public static let della = TaskArithmeticFamily(
        name: "della", prettyName: "DELLA", referenceURL: "https://arxiv.org/abs/2406.11617",
        sparsifier: .dellaMagprune, signConsensus: true, defaultNormalize: true, defaultRescale: true)
}
