package keel

// ProduceNotTakenHook is a ProduceHook that is also told when a record it
// saw in OnProduce was handed back to the caller instead of taken:
// TryProduce found the buffer full and returned ErrBufferFull. Such a
// record gets no report, so OnProduceRecord never follows; a hook keeping
// state from OnProduce to the report (a tracing span) lets it go here.
// Every other record OnProduce sees is reported.
type ProduceNotTakenHook interface {
	ProduceHook
	OnProduceNotTaken(msg *Message, err error)
}

// onProduceNotTaken tells the ProduceHooks that implement
// ProduceNotTakenHook. It runs only when a buffer is full, so a type check
// per hook here costs less than a list of its own in hookSet would on
// every NewClient.
func (h *hookSet) onProduceNotTaken(msg *Message, err error) {
	defer h.guard("OnProduceNotTaken")
	for _, x := range h.produce {
		if nt, ok := x.(ProduceNotTakenHook); ok {
			nt.OnProduceNotTaken(msg, err)
		}
	}
}
