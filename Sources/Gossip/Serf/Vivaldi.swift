import ConsulCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Serf's three independent Lamport clocks (membership intents, user events, queries).
package struct LamportClock: Sendable, Equatable {
    package private(set) var time: LamportTime = 0

    package init(time: LamportTime = 0) { self.time = time }

    @discardableResult
    package mutating func increment() -> LamportTime {
        time &+= 1
        return time
    }

    /// Having seen `other`, our next time must be later than it.
    package mutating func witness(_ other: LamportTime) {
        if other >= time { time = other &+ 1 }
    }
}

/// Settings of the Vivaldi network-coordinate algorithm (serf `coordinate.DefaultConfig`).
package struct VivaldiConfig: Sendable, Equatable {
    package var dimensionality = 8
    package var errorMax = 1.5
    package var ce = 0.25
    package var cc = 0.25
    package var adjustmentWindowSize = 20
    package var heightMin = 10.0e-6
    package var latencyFilterSize = 3
    package var gravityRho = 150.0
    /// Round trips above this are discarded (serf: 10 s).
    package var maxRTT: Duration = .seconds(10)
    /// Members whose latency samples are kept; more are forgotten oldest first.
    package var maxTrackedNodes = 10_000

    package init() {}
}

/// A Vivaldi coordinate (serf `coordinate.Coordinate`), carried in serf's ack payloads.
package struct VivaldiCoordinate: Hashable, Sendable {
    package var vector: [Double]
    package var error: Double
    package var adjustment: Double
    package var height: Double

    package init(vector: [Double], error: Double, adjustment: Double, height: Double) {
        self.vector = vector
        self.error = error
        self.adjustment = adjustment
        self.height = height
    }

    package init(config: VivaldiConfig) {
        self.init(vector: Array(repeating: 0, count: config.dimensionality), error: config.errorMax, adjustment: 0, height: config.heightMin)
    }

    package init(_ payload: SerfPingPayload) {
        self.init(vector: payload.vector, error: payload.error, adjustment: payload.adjustment, height: payload.height)
    }

    package var payload: SerfPingPayload { SerfPingPayload(vector: vector, error: error, adjustment: adjustment, height: height) }

    package var isValid: Bool { (vector + [error, adjustment, height]).allSatisfy(\.isFinite) }

    /// Estimated round trip to `other`, in seconds (serf `DistanceTo`).
    package func distance(to other: VivaldiCoordinate) -> Double {
        let raw = rawDistance(to: other)
        let adjusted = raw + adjustment + other.adjustment
        return adjusted > 0 ? adjusted : raw
    }

    func rawDistance(to other: VivaldiCoordinate) -> Double {
        magnitude(zip(vector, other.vector).map(-)) + height + other.height
    }
}

private func magnitude(_ vector: [Double]) -> Double { vector.reduce(0) { $0 + $1 * $1 }.squareRoot() }

/// Serf's coordinate client: updates our coordinate from each measured round trip. Pure: the only
/// randomness (a direction when two coordinates coincide) comes from the seeded generator.
package struct VivaldiClient: Sendable {
    package let config: VivaldiConfig
    package private(set) var coordinate: VivaldiCoordinate
    private let origin: VivaldiCoordinate
    private var adjustmentIndex = 0
    private var adjustmentSamples: [Double]
    private var latencySamples: [String: [Double]] = [:]
    private var random: SeededRandom
    package private(set) var resets = 0

    package init(config: VivaldiConfig = VivaldiConfig(), random: SeededRandom) {
        self.config = config
        coordinate = VivaldiCoordinate(config: config)
        origin = VivaldiCoordinate(config: config)
        adjustmentSamples = Array(repeating: 0, count: config.adjustmentWindowSize)
        self.random = random
    }

    package mutating func forget(_ node: String) { latencySamples[node] = nil }

    /// Folds in one observation: `other`'s coordinate and the round trip to it. Bad input (wrong
    /// dimensions, NaN, an impossible round trip) is refused, not applied.
    package mutating func update(node: String, other: VivaldiCoordinate, rtt: Duration) -> Bool {
        guard other.vector.count == coordinate.vector.count, other.isValid else { return false }
        guard rtt >= .zero, rtt <= config.maxRTT else { return false }
        if latencySamples[node] == nil && latencySamples.count >= config.maxTrackedNodes {
            latencySamples.removeAll()
        }
        let seconds = latencyFilter(node: node, rtt: Double(rtt.totalNanoseconds) / 1e9)
        updateVivaldi(other: other, rtt: seconds)
        updateAdjustment(other: other, rtt: seconds)
        updateGravity()
        if !coordinate.isValid {
            resets += 1
            coordinate = VivaldiCoordinate(config: config)
        }
        return true
    }

    /// The median of the last few samples for `node`.
    private mutating func latencyFilter(node: String, rtt: Double) -> Double {
        var samples = latencySamples[node] ?? []
        samples.append(rtt)
        if samples.count > config.latencyFilterSize { samples.removeFirst() }
        latencySamples[node] = samples
        return samples.sorted()[samples.count / 2]
    }

    private mutating func updateVivaldi(other: VivaldiCoordinate, rtt measured: Double) {
        let zero = 1.0e-6
        let rtt = max(measured, zero)
        let distance = coordinate.distance(to: other)
        let wrongness = abs(distance - rtt) / rtt
        let totalError = max(coordinate.error + other.error, zero)
        let weight = coordinate.error / totalError
        coordinate.error = min(config.ce * weight * wrongness + coordinate.error * (1 - config.ce * weight), config.errorMax)
        let force = config.cc * weight * (rtt - distance)
        coordinate = applyForce(force, from: other, to: coordinate)
    }

    private mutating func updateAdjustment(other: VivaldiCoordinate, rtt: Double) {
        guard config.adjustmentWindowSize > 0 else { return }
        adjustmentSamples[adjustmentIndex] = rtt - coordinate.rawDistance(to: other)
        adjustmentIndex = (adjustmentIndex + 1) % config.adjustmentWindowSize
        coordinate.adjustment = adjustmentSamples.reduce(0, +) / (2 * Double(config.adjustmentWindowSize))
    }

    private mutating func updateGravity() {
        let distance = origin.distance(to: coordinate)
        let force = -1 * pow(distance / config.gravityRho, 2)
        coordinate = applyForce(force, from: origin, to: coordinate)
    }

    /// serf `ApplyForce`: moves `coordinate` along the unit vector away from `other`.
    private mutating func applyForce(_ force: Double, from other: VivaldiCoordinate, to coordinate: VivaldiCoordinate) -> VivaldiCoordinate {
        var result = coordinate
        let (unit, distance) = unitVector(from: other.vector, to: coordinate.vector)
        result.vector = zip(result.vector, unit).map { $0 + $1 * force }
        if distance > 1.0e-6 {
            result.height = max((result.height + other.height) * force / distance + result.height, config.heightMin)
        }
        return result
    }

    private mutating func unitVector(from a: [Double], to b: [Double]) -> ([Double], Double) {
        let difference = zip(b, a).map(-)
        let length = magnitude(difference)
        if length > 1.0e-6 { return (difference.map { $0 / length }, length) }
        var randomDirection = difference.map { _ in random.unitInterval() - 0.5 }
        let randomLength = magnitude(randomDirection)
        if randomLength > 1.0e-6 {
            randomDirection = randomDirection.map { $0 / randomLength }
            return (randomDirection, 0)
        }
        var axis = Array(repeating: 0.0, count: difference.count)
        if !axis.isEmpty { axis[0] = 1 }
        return (axis, 0)
    }
}
