module github.com/accountwatch/accountwatch/bench

go 1.26.0
