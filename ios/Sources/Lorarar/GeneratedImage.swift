/// A generated image: `height` rows of `width` RGB8 pixels, row-major, 3 bytes a pixel, no padding.
/// (Not named `Image`, which SwiftUI apps already have.)
public struct GeneratedImage: Sendable {
    public let width: Int
    public let height: Int
    /// `width * height * 3` bytes.
    public let rgb: [UInt8]
    /// How long the generation took.
    public let timings: GenerateTimings

    /// The pixel at (x, y).
    public func pixel(x: Int, y: Int) -> (r: UInt8, g: UInt8, b: UInt8) {
        precondition(x >= 0 && x < width && y >= 0 && y < height, "(\(x), \(y)) outside \(width)x\(height)")
        let i = (y * width + x) * 3
        return (rgb[i], rgb[i + 1], rgb[i + 2])
    }
}

#if canImport(CoreGraphics)
import CoreGraphics
import Foundation

extension GeneratedImage {
    /// The pixels as a CGImage (24-bit RGB, no alpha, device RGB), e.g. for `UIImage(cgImage:)` or SwiftUI's
    /// `Image(decorative:scale:)`.
    public func makeCGImage() -> CGImage? {
        guard let provider = CGDataProvider(data: Data(rgb) as CFData) else { return nil }
        return CGImage(
            width: width,
            height: height,
            bitsPerComponent: 8,
            bitsPerPixel: 24,
            bytesPerRow: width * 3,
            space: CGColorSpaceCreateDeviceRGB(),
            bitmapInfo: CGBitmapInfo(rawValue: CGImageAlphaInfo.none.rawValue),
            provider: provider,
            decode: nil,
            shouldInterpolate: false,
            intent: .defaultIntent
        )
    }
}
#endif
