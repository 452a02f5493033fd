public enum SpargeSIMDVersion { public static let value = "0.1" }
