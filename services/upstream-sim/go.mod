module github.com/accountwatch/accountwatch/services/upstream-sim

go 1.26.0

require github.com/accountwatch/accountwatch/pkg v0.0.0

replace github.com/accountwatch/accountwatch/pkg => ../../pkg
