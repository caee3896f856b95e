//! Page-number pagination as the v4 API does it: 1-based pages, a page past
//! the end is simply empty.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortDirection {
    Asc,
    Desc,
}

impl SortDirection {
    pub fn sql(self) -> &'static str {
        match self {
            SortDirection::Asc => "ASC",
            SortDirection::Desc => "DESC",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRequest {
    pub page: u32,
    pub per_page: u32,
}

impl PageRequest {
    pub fn offset(self) -> i64 {
        (i64::from(self.page) - 1) * i64::from(self.per_page)
    }

    pub fn limit(self) -> i64 {
        i64::from(self.per_page)
    }
}

#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub request: PageRequest,
    pub total_count: u64,
}

impl<T> Page<T> {
    pub fn total_pages(&self) -> u64 {
        self.total_count
            .div_ceil(u64::from(self.request.per_page.max(1)))
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            request: self.request,
            total_count: self.total_count,
        }
    }
}
