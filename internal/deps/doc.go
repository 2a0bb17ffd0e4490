// Package deps holds no code: its tests keep the import rules between
// Allium's parts (docs/architecture.md, "The parts"), over the whole
// module at once. init's own list of allowed modules, and its static
// linking, are tested in init/deps_test.go.
package deps
