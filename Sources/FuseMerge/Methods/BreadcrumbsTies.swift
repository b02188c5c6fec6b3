/// Breadcrumbs sparsification with TIES sign consensus.
/// https://arxiv.org/abs/2312.06795
extension TaskArithmeticFamily {
    public static let breadcrumbsTies = TaskArithmeticFamily(
        name: "breadcrumbs_ties", prettyName: "Model Breadcrumbs with TIES", referenceURL: "https://arxiv.org/abs/2312.06795",
        sparsifier: .magnitudeOutliers, signConsensus: true, defaultNormalize: false, defaultRescale: false)
}
