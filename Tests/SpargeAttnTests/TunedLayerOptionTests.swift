import Foundation
import SpargeAttn
import SpargeTuning
import Testing

/// The per-layer options a tuned settings file carries (Q smoothing, fixed-point P.V): each is
/// written only when on, read back, applied by `TunedLayer.parameters(base:)`, and shown by
/// `SpargeParameters.description` only when on.
struct TunedLayerOptionTests {
    /// The option's JSON field, and a layer and parameters with it turned on.
    static func option(_ index: Int) -> (field: String, layer: (TunedHead) -> TunedLayer, isOn: (SpargeParameters) -> Bool, on: SpargeParameters) {
        var p = SpargeParameters()
        switch index {
        case 0:
            p.smoothQ = true
            return ("smooth_q", { TunedLayer(name: "a", heads: [$0], smoothQ: true) }, \.smoothQ, p)
        default:
            p.fixedPointPV = true
            return ("fixed_point_pv", { TunedLayer(name: "a", heads: [$0], fixedPointPV: true) }, \.fixedPointPV, p)
        }
    }

    @Test(arguments: 0..<2)
    func tunedSettingsCarryTheOption(index: Int) throws {
        let o = Self.option(index)
        let head = TunedHead(theta: 0.25, tau: 0.9, topK: nil, lambda: 20, blockQ: 128, blockK: 64, error: 0.05, density: 0.5)
        let settings = TunedSettings(layers: [o.layer(head), TunedLayer(name: "b", heads: [head])])
        #expect(settings.jsonText.components(separatedBy: o.field).count == 2, "\(o.field) written for the one layer that has it")
        let back = try TunedSettings.parse(Data(settings.jsonText.utf8))
        #expect(back == settings)
        #expect(o.isOn(try back.parameters(layer: "a", base: SpargeParameters(), heads: 1)))
        #expect(!o.isOn(try back.parameters(layer: "b", base: SpargeParameters(), heads: 1)))
        #expect(o.on.description.contains(o.field))
        #expect(!SpargeParameters().description.contains(o.field))
    }
}
