package activeplatform

import "encoding/json"

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
