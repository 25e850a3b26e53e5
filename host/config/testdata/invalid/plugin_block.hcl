plugin "shell" {
  source = ""
  sha256 = "abc"
  args   = "--x"
}

plugin "shell" {
  source = "other"
}

plugin "go" {
  sauce = "bin/go"
}
