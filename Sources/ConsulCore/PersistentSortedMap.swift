/// An ordered map whose copies are free and whose updates cost O(log n): an AVL tree whose nodes
/// are never changed after they are built, so an update copies only the path to the changed key
/// and shares the rest with every earlier version.
///
/// The state store keeps each table in one of these. A reader takes the current version and reads
/// it while writers go on producing new ones; neither waits for the other and nothing is copied
/// wholesale (a `Dictionary` would copy the entire table on the first write after a reader took it).
package struct PersistentSortedMap<Key: Comparable & Sendable, Value: Sendable>: Sendable {
    final class Node: Sendable {
        let key: Key
        let value: Value
        let left: Node?
        let right: Node?
        let height: Int8
        let count: Int

        init(key: Key, value: Value, left: Node?, right: Node?) {
            self.key = key
            self.value = value
            self.left = left
            self.right = right
            self.height = max(left?.height ?? 0, right?.height ?? 0) + 1
            self.count = (left?.count ?? 0) + (right?.count ?? 0) + 1
        }
    }

    private var root: Node?

    package init() {}

    package var count: Int { root?.count ?? 0 }
    package var isEmpty: Bool { root == nil }

    package subscript(key: Key) -> Value? {
        var node = root
        while let current = node {
            if key < current.key {
                node = current.left
            } else if current.key < key {
                node = current.right
            } else {
                return current.value
            }
        }
        return nil
    }

    /// Inserts or replaces; returns the value it replaced.
    @discardableResult
    package mutating func set(_ key: Key, _ value: Value) -> Value? {
        var replaced: Value?
        root = Self.inserting(key, value, into: root, replaced: &replaced)
        return replaced
    }

    /// Removes `key`; returns the value it had.
    @discardableResult
    package mutating func remove(_ key: Key) -> Value? {
        var removed: Value?
        root = Self.removing(key, from: root, removed: &removed)
        return removed
    }

    /// Every entry with a key `>= lower`, in key order, for as long as `body` returns true.
    package func forEach(from lower: Key? = nil, _ body: (Key, Value) throws -> Bool) rethrows {
        // An explicit stack: the tree is at most ~1.44 log2(n) deep, so this stays small.
        var stack: [Node] = []
        var node = root
        while true {
            while let current = node {
                if let lower, current.key < lower {
                    node = current.right
                } else {
                    stack.append(current)
                    node = current.left
                }
            }
            guard let next = stack.popLast() else { return }
            guard try body(next.key, next.value) else { return }
            node = next.right
        }
    }

    /// Every entry in key order.
    package var entries: [(key: Key, value: Value)] {
        var result: [(key: Key, value: Value)] = []
        result.reserveCapacity(count)
        forEach { key, value in
            result.append((key, value))
            return true
        }
        return result
    }

    package var values: [Value] { entries.map(\.value) }

    // MARK: - AVL with path copying

    private static func height(_ node: Node?) -> Int8 { node?.height ?? 0 }

    private static func inserting(_ key: Key, _ value: Value, into node: Node?, replaced: inout Value?) -> Node {
        guard let node else { return Node(key: key, value: value, left: nil, right: nil) }
        if key < node.key {
            return balanced(node.key, node.value, inserting(key, value, into: node.left, replaced: &replaced), node.right)
        } else if node.key < key {
            return balanced(node.key, node.value, node.left, inserting(key, value, into: node.right, replaced: &replaced))
        } else {
            replaced = node.value
            return Node(key: key, value: value, left: node.left, right: node.right)
        }
    }

    private static func removing(_ key: Key, from node: Node?, removed: inout Value?) -> Node? {
        guard let node else { return nil }
        if key < node.key {
            let left = removing(key, from: node.left, removed: &removed)
            return removed == nil ? node : balanced(node.key, node.value, left, node.right)
        } else if node.key < key {
            let right = removing(key, from: node.right, removed: &removed)
            return removed == nil ? node : balanced(node.key, node.value, node.left, right)
        }
        removed = node.value
        guard let left = node.left else { return node.right }
        guard let right = node.right else { return left }
        var smallest = right
        while let next = smallest.left { smallest = next }
        var ignored: Value?
        return balanced(smallest.key, smallest.value, left, removing(smallest.key, from: right, removed: &ignored))
    }

    private static func balanced(_ key: Key, _ value: Value, _ left: Node?, _ right: Node?) -> Node {
        let difference = Int(height(left)) - Int(height(right))
        if difference > 1, let left {
            if height(left.left) >= height(left.right) {
                return Node(key: left.key, value: left.value, left: left.left,
                            right: Node(key: key, value: value, left: left.right, right: right))
            }
            let pivot = left.right!
            return Node(key: pivot.key, value: pivot.value,
                        left: Node(key: left.key, value: left.value, left: left.left, right: pivot.left),
                        right: Node(key: key, value: value, left: pivot.right, right: right))
        }
        if difference < -1, let right {
            if height(right.right) >= height(right.left) {
                return Node(key: right.key, value: right.value,
                            left: Node(key: key, value: value, left: left, right: right.left), right: right.right)
            }
            let pivot = right.left!
            return Node(key: pivot.key, value: pivot.value,
                        left: Node(key: key, value: value, left: left, right: pivot.left),
                        right: Node(key: right.key, value: right.value, left: pivot.right, right: right.right))
        }
        return Node(key: key, value: value, left: left, right: right)
    }

    /// Checks the AVL and ordering invariants; for tests.
    package func isValid() -> Bool {
        func check(_ node: Node?, lower: Key?, upper: Key?) -> Bool {
            guard let node else { return true }
            if let lower, !(lower < node.key) { return false }
            if let upper, !(node.key < upper) { return false }
            guard abs(Int(Self.height(node.left)) - Int(Self.height(node.right))) <= 1 else { return false }
            guard node.height == max(Self.height(node.left), Self.height(node.right)) + 1 else { return false }
            return check(node.left, lower: lower, upper: node.key) && check(node.right, lower: node.key, upper: upper)
        }
        return check(root, lower: nil, upper: nil)
    }
}
