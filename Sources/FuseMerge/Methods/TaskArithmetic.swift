/// Task vectors added to the base: θ₀ + λ·Σwᵢτᵢ (÷Σwᵢ with normalize).
/// https://arxiv.org/abs/2212.04089
extension TaskArithmeticFamily {
    public static let taskArithmetic = TaskArithmeticFamily(
        name: "task_arithmetic", prettyName: "Task Arithmetic", referenceURL: "https://arxiv.org/abs/2212.04089",
        sparsifier: nil, signConsensus: false, defaultNormalize: false, defaultRescale: false)
}
