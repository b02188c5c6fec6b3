/// Model Breadcrumbs: drop the gamma largest (outliers) and the smallest magnitudes of each τᵢ.
/// https://arxiv.org/abs/2312.06795
extension TaskArithmeticFamily {
    public static let breadcrumbs = TaskArithmeticFamily(
        name: "breadcrumbs", prettyName: "Model Breadcrumbs", referenceURL: "https://arxiv.org/abs/2312.06795",
        sparsifier: .magnitudeOutliers, signConsensus: false, defaultNormalize: false, defaultRescale: false)
}
