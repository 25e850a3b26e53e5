limit "heavy" {
  max = 0
}

limit "light" {
}

limit "heavy" {
  max = 3
}

module "shell" "a" {
  limits = ["hevy", "nosuch"]
}
