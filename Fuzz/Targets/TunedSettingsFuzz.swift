import Foundation
import SpargeAttn
import SpargeFormats
import SpargeTuning

// libFuzzer target: any bytes through the tuned-settings (JSON) reader. It must return
// settings or throw a TuningError; a crash, trap, leak report or hang is a bug.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = Data(bytes: data, count: size)
    if let settings = try? TunedSettings.parse(bytes) {
        // What was read must be written and read back unchanged (layer names and head counts).
        guard let again = try? TunedSettings.parse(Data(settings.jsonText.utf8)),
              again.layers.map(\.name) == settings.layers.map(\.name),
              again.layers.map(\.heads.count) == settings.layers.map(\.heads.count) else {
            fatalError("parsed settings did not survive a round trip")
        }
        for layer in settings.layers { _ = try? layer.parameters(base: .recommended) }
    }
    return 0
}
