package main

import (
	"github.com/re2g/re2g/model"
	"github.com/re2g/re2g/torch"
)

func modelOptions(dev torch.Device, dt torch.DType) model.Options {
	return model.Options{Device: dev, DType: dt}
}
