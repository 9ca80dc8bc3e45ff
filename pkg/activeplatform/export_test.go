package activeplatform

import (
	"encoding/json"

	"github.com/accountwatch/accountwatch/pkg/upstream"
)

// DecodeReference decodes with encoding/json: the reference decodeWire must match.
func DecodeReference(body []byte) (*Account, error) {
	var w wireAccount
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, err
	}
	return w.normalise()
}

// DecodeFast decodes with decodeWire.
func DecodeFast(body []byte) (*Account, error) {
	var w wireAccount
	if err := decodeWire(body, &w); err != nil {
		return nil, err
	}
	return w.normalise()
}

// ListItems exposes the page splitter to the fuzzer.
func ListItems(body []byte) ([][]byte, error) { return listItems(body) }

// WalkPage walks a page as a listing does, with predict (nil: none), and
// returns the items and fingerprints it handed out before it ended or failed.
func WalkPage(body []byte, predict Predictor) ([][]byte, []upstream.Fingerprint, error) {
	var items [][]byte
	var fps []upstream.Fingerprint
	_, err := walkPage(body, predict, func(item []byte, fp upstream.Fingerprint) error {
		items, fps = append(items, item), append(fps, fp)
		return nil
	})
	return items, fps, err
}
