return { CT = "Computed Tomography", MR = "Magnetic Resonance" }
