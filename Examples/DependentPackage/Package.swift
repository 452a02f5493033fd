// swift-tools-version: 6.2
import PackageDescription

// An application package that uses SpargeAttn as any other package would: by URL and version,
// with the default traits. The URL is where SpargeAttn is published;
// Scripts/check-dependent-package.sh copies this folder, makes a throwaway clone of the current
// commit tagged 1.0.0 and mirrors the URL to that clone (`swift package config set-mirror`),
// so the check builds the commit under test without network and without editing this file.
let package = Package(
    name: "DependentPackage",
    dependencies: [
        .package(url: "https://github.com/spargeattn/SpargeAttn.git", from: "1.0.0"),
    ],
    targets: [
        // Four uses of the library with no unsafe pointer in their code; exits 1 if one fails its check.
        .executableTarget(name: "DependentScenarios", dependencies: [.product(name: "SpargeAttn", package: "SpargeAttn")]),
    ],
    swiftLanguageModes: [.v6]
)
