// Command luahealth runs an Argo CD resource health script the way Argo CD does, with
// the same Lua VM (gopher-lua), so the scripts under manifests/argocd/health are tested
// against what Argo CD will actually execute.
//
//	luahealth SCRIPT.lua < object.json
//
// prints the health Argo CD would record, as JSON: {"status": "...", "message": "..."}.
// What it replicates of Argo CD (util/lua/lua.go): the libraries opened (package, base,
// table: no string library unless useOpenLibs is set), the one-second time limit, the
// conversion of the object into the global `obj` (objects to tables, arrays to 1-based
// tables, integers and floats to numbers), and the handling of the result (a table,
// else an error; a status outside Argo CD's codes becomes Unknown). The os library is
// left out: the scripts do not use it.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	lua "github.com/yuin/gopher-lua"
)

type healthStatus struct {
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
}

var validStatus = map[string]bool{
	"Unknown": true, "Progressing": true, "Suspended": true,
	"Healthy": true, "Degraded": true, "Missing": true,
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: luahealth SCRIPT.lua < object.json")
		os.Exit(2)
	}
	script, err := os.ReadFile(os.Args[1])
	if err != nil {
		fail(err)
	}
	input, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail(err)
	}
	object, err := decodeObject(input)
	if err != nil {
		fail(fmt.Errorf("the object is not JSON: %w", err))
	}
	result, err := executeHealth(string(script), object)
	if err != nil {
		fail(err)
	}
	out, err := json.Marshal(result)
	if err != nil {
		fail(err)
	}
	fmt.Println(string(out))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "luahealth:", err)
	os.Exit(1)
}

// decodeObject decodes JSON as Kubernetes' unstructured decoding does: integers become
// int64, other numbers float64 (never json.Number, which Argo CD would pass as a string).
func decodeObject(data []byte) (map[string]any, error) {
	decoder := json.NewDecoder(bytes.NewReader(data))
	decoder.UseNumber()
	var raw map[string]any
	if err := decoder.Decode(&raw); err != nil {
		return nil, err
	}
	converted, err := convertNumbers(raw)
	if err != nil {
		return nil, err
	}
	return converted.(map[string]any), nil
}

func convertNumbers(value any) (any, error) {
	switch v := value.(type) {
	case json.Number:
		if i, err := strconv.ParseInt(string(v), 10, 64); err == nil {
			return i, nil
		}
		return strconv.ParseFloat(string(v), 64)
	case []any:
		for i, item := range v {
			c, err := convertNumbers(item)
			if err != nil {
				return nil, err
			}
			v[i] = c
		}
		return v, nil
	case map[string]any:
		for key, item := range v {
			c, err := convertNumbers(item)
			if err != nil {
				return nil, err
			}
			v[key] = c
		}
		return v, nil
	}
	return value, nil
}

func executeHealth(script string, object map[string]any) (*healthStatus, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", decodeValue(l, object))
	if err := l.DoString(script); err != nil {
		return nil, err
	}
	returned := l.Get(-1)
	if returned.Type() != lua.LTTable {
		return nil, fmt.Errorf("expect table output from Lua script, not %s", returned.Type())
	}
	encoded, err := encodeValue(returned)
	if err != nil {
		return nil, err
	}
	result := &healthStatus{}
	if err := json.Unmarshal(encoded, result); err != nil {
		return nil, err
	}
	if !validStatus[result.Status] {
		return &healthStatus{Status: "Unknown", Message: "Lua returned an invalid health status"}, nil
	}
	return result, nil
}

// decodeValue is Argo CD's conversion of an unstructured object into Lua values.
func decodeValue(l *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case []any:
		array := l.CreateTable(len(v), 0)
		for _, item := range v {
			array.Append(decodeValue(l, item))
		}
		return array
	case map[string]any:
		table := l.CreateTable(0, len(v))
		for key, item := range v {
			table.RawSetH(lua.LString(key), decodeValue(l, item))
		}
		return table
	}
	return lua.LNil
}

// encodeValue turns a Lua value into JSON as gopher-json (Argo CD's encoder) does: a
// table whose keys are 1..n is an array, an empty table is [], any other an object.
func encodeValue(value lua.LValue) ([]byte, error) {
	return json.Marshal(toGo(value, 0))
}

func toGo(value lua.LValue, depth int) any {
	if depth > 100 {
		return nil
	}
	switch v := value.(type) {
	case lua.LBool:
		return bool(v)
	case lua.LNumber:
		return float64(v)
	case lua.LString:
		return string(v)
	case *lua.LTable:
		if length := v.Len(); length > 0 || isEmpty(v) {
			array := make([]any, 0, length)
			sequence := true
			count := 0
			v.ForEach(func(key, _ lua.LValue) {
				count++
				if n, ok := key.(lua.LNumber); !ok || float64(n) < 1 || float64(n) > float64(length) {
					sequence = false
				}
			})
			if sequence && count == length {
				for i := 1; i <= length; i++ {
					array = append(array, toGo(v.RawGetInt(i), depth+1))
				}
				return array
			}
		}
		object := map[string]any{}
		v.ForEach(func(key, item lua.LValue) {
			object[key.String()] = toGo(item, depth+1)
		})
		return object
	}
	return nil
}

func isEmpty(table *lua.LTable) bool {
	key, _ := table.Next(lua.LNil)
	return key == lua.LNil
}
