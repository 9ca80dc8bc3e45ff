module github.com/accountwatch/accountwatch/services/devstack

go 1.26.0

require github.com/accountwatch/accountwatch/pkg v0.0.0

require github.com/compose-spec/compose-go/v2 v2.16.2 // indirect

replace github.com/accountwatch/accountwatch/pkg => ../../pkg
